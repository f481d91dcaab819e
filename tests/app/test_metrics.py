"""/metrics on prometheus_client: the text format, per-key counters, the bearer token, and `rnnmt serve --workers 2`
adding up both workers' metrics (prometheus_client's multiprocess mode) in a real server subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.bench_serve import free_port
from app.main import create_app
from app.metrics import ANONYMOUS, MULTIPROC_ENV, Metrics
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["rnnmt_http_requests_total", "rnnmt_http_request_duration_seconds", "rnnmt_batch_sentences",
         "rnnmt_batch_duration_seconds", "rnnmt_queue_depth", "rnnmt_sentences_translated_total",
         "rnnmt_tokens_translated_total", "rnnmt_cache_lookups_total", "rnnmt_requests_rejected_total",
         "rnnmt_models_loaded", "rnnmt_key_requests_total", "rnnmt_key_characters_total",
         "rnnmt_key_rejections_total", "rnnmt_rate_limit_storage_errors_total"]
TRANSLATE = {"text": "one two", "source": "en", "target": "de", "beam_size": 1}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text, parsed by prometheus_client: {(name, labels): value}."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples(text).items() if n == name and set(labels.items()) <= ls)


def test_text_format_parses_and_has_every_metric() -> None:
    metrics = Metrics()
    metrics.requests.inc("/translate", "POST", "200")
    metrics.latency.observe(0.02, "/translate")
    metrics.batch_observer("m")(3, 12, 0.01)
    metrics.queue_depth.set("m", value=2)
    metrics.models.set(value=1)
    metrics.cache.inc("hit", amount=4)
    metrics.rejected.inc("queue_full")
    metrics.key_requests.inc("alice")
    metrics.key_requests.inc(ANONYMOUS)
    metrics.key_characters.inc("alice", amount=123)
    metrics.key_rejections.inc("alice", "rate_limited")
    metrics.limiter_errors.inc()
    text = metrics.render()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert set(NAMES) <= set(types) and types["rnnmt_batch_sentences"] == "histogram"
    parsed = samples(text)
    for name in NAMES:
        assert any(n.startswith(name) for n, _ in parsed), name
    assert parsed[("rnnmt_key_requests_total", frozenset({("key", "alice")}))] == 1
    assert parsed[("rnnmt_key_requests_total", frozenset({("key", "anonymous")}))] == 1
    assert parsed[("rnnmt_key_characters_total", frozenset({("key", "alice")}))] == 123
    assert parsed[("rnnmt_key_rejections_total", frozenset({("key", "alice"), ("reason", "rate_limited")}))] == 1
    assert parsed[("rnnmt_rate_limit_storage_errors_total", frozenset())] == 1
    assert total(text, "rnnmt_batch_sentences_bucket", le="4.0") == 1 and total(text, "rnnmt_queue_depth") == 2
    # labels in the order they were declared (as before prometheus_client), no `_created` series
    assert 'rnnmt_http_requests_total{route="/translate",method="POST",status="200"} 1.0' in text
    assert "_created" not in text
    assert metrics.requests.value("/translate", "POST", "200") == 1 and metrics.requests.value("/x", "GET", "1") == 0
    assert "alice" not in Metrics().render()  # each Metrics has a registry of its own


WRITER = """
import os, sys
from app.metrics import Metrics
metrics = Metrics()
metrics.requests.inc("/health", "GET", "200", amount=int(sys.argv[1]))
metrics.key_characters.inc("alice", amount=10)
metrics.queue_depth.set("m", value=2)
metrics.models.set(value=1)
if sys.argv[2] == "close":
    metrics.close()
"""


def test_multiprocess_files_add_up_and_gone_workers_drop_their_live_gauges(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path), "PYTHONPATH": str(ROOT)}
    for count, end in [(3, "close"), (4, "exit")]:  # one shuts down cleanly, the other just stops
        subprocess.run([sys.executable, "-c", WRITER, str(count), end], env=env, check=True, cwd=ROOT)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2 and len(list(tmp_path.glob("gauge_live*.db"))) == 2
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    text = Metrics().render()  # reads the files (this process's own values are not among them)
    assert total(text, "rnnmt_http_requests_total", route="/health") == 7
    assert total(text, "rnnmt_key_characters_total", key="alice") == 20
    assert total(text, "rnnmt_queue_depth") == 0 and total(text, "rnnmt_models_loaded") == 0
    assert not list(tmp_path.glob("gauge_live*.db"))  # both writers are gone: their live gauges went with them


def test_token_guards_metrics(tmp_path: Path) -> None:
    def get(app, headers: dict[str, str] | None = None) -> httpx.Response:
        async def fetch() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                return await client.get("/metrics", headers=headers)

        return asyncio.run(fetch())

    guarded = create_app(Settings(models_dir=tmp_path, device="cpu", metrics_token="s3cret"))
    for headers in [None, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
                    {"Authorization": "s3cret"}]:
        response = get(guarded, headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized" and response.json()["error"]["message"]
        assert response.headers["www-authenticate"] == "Bearer"
    response = get(guarded, {"Authorization": "Bearer s3cret"})
    assert response.status_code == 200 and 'route="/metrics",method="GET",status="401"} 4.0' in response.text
    assert get(guarded, {"Authorization": "bearer s3cret"}).status_code == 200
    assert get(create_app(Settings(models_dir=tmp_path, device="cpu"))).status_code == 200  # no token: open


def worker_requests(folder: Path, route: str) -> dict[str, float]:
    """Requests to `route` per worker pid, from each worker's own counter file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)])
        counts[path.stem.split("_")[1]] = sum(s.value for f in families for s in f.samples
                                              if s.name == "rnnmt_http_requests_total" and s.labels["route"] == route)
    return counts


def loaded_workers(url: str) -> dict[str, float]:
    """{pid: models loaded} of the live workers (rnnmt_models_loaded has one series per live worker)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {dict(ls)["pid"]: v for (n, ls), v in samples(text).items() if n == "rnnmt_models_loaded"}


def wait_for(condition, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if found := condition():
                return found
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_two_workers_add_up(served_models_dir: Path, tmp_path: Path) -> None:
    port, log_file = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}  # serve makes a fresh folder of its own
    env.update(RNNMT_MODELS_DIR=str(served_models_dir), RNNMT_DEVICE="cpu", RNNMT_THREADS="1")
    with open(log_file, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--workers", "2", "--port", str(port),
                                   "--no-access-log"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"

    def two_loaded_workers() -> dict[str, float] | None:
        workers = loaded_workers(url)
        return workers if sorted(workers.values()) == [1, 1] else None

    try:
        # Only /metrics until both workers have loaded the model: every other route's count starts at 0.
        workers = wait_for(two_loaded_workers, "two workers with the model loaded")
        folder = Path(re.search(r"add up their metrics through (\S+)", log_file.read_text()).group(1))
        sent: Counter[str] = Counter()
        while sent["/health"] < 30 or sum(1 for n in worker_requests(folder, "/health").values() if n) < 2:
            assert sent["/health"] < 300, "one worker answered every request"
            for _ in range(10):  # a new connection each: the workers take turns accepting them
                assert httpx.get(f"{url}/health").status_code == 200
            response = httpx.post(f"{url}/translate", json=TRANSLATE, timeout=30)
            assert response.json()["translations"][0]["text"] == "zwei eins"
            sent.update({"/health": 10, "/translate": 1})
        text = httpx.get(f"{url}/metrics").text
        assert total(text, "rnnmt_http_requests_total", route="/health") == sent["/health"]
        assert total(text, "rnnmt_http_requests_total", route="/translate", status="200") == sent["/translate"]
        assert total(text, "rnnmt_http_requests_total") == sum(sent.values()) + total(
            text, "rnnmt_http_requests_total", route="/metrics")
        assert total(text, "rnnmt_sentences_translated_total") + total(
            text, "rnnmt_cache_lookups_total", result="hit") == sent["/translate"]

        # A worker that dies without shutting down: uvicorn starts another; its counts stay, its live gauges go.
        dead = min(workers)
        os.kill(int(dead), signal.SIGKILL)
        replaced = wait_for(lambda: (w := two_loaded_workers()) and dead not in w, "the replacement worker")
        assert replaced
        text = httpx.get(f"{url}/metrics").text
        assert total(text, "rnnmt_http_requests_total", route="/health") == sent["/health"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0, log_file.read_text()[-3000:]
    assert not folder.exists()  # the folder serve made went with it
