"""API keys and quotas against real servers: `rnnmt keys` (the CLI) writes the SQLite file that a running
`rnnmt serve` reads, and quotas are shared through a real redis-server by two rnnmt processes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from app.bench_serve import free_port, running_server
from app.keys import KeyStore, Limits
from tests.app.conftest import SERVER_ENV, wait_ready

BODY = {"text": "one two", "source": "en", "target": "de", "beam_size": 1}


def fresh_minute(margin_s: float = 25.0) -> None:
    """Sliding-window counters are exact within one epoch minute and estimate across two (the previous
    minute's count weighs by how much of it is left): start a sequence that counts to a per-minute limit
    early enough in a minute that it ends in the same one. The margin is what the sequence may take: a few
    requests need a few seconds; waiting for more than that only lengthens the suite (up to the margin a call)."""
    left = 60.0 - time.time() % 60.0
    if left < margin_s:
        time.sleep(left + 0.2)


def keys_cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "keys", *args, "--db", str(db)],
                          capture_output=True, text=True, timeout=60)


def add_key(db: Path, name: str, *limits: str) -> str:
    done = keys_cli(db, "add", "--name", name, *limits)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_key_store_keeps_only_hashes(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite")
    key = store.add("alice", Limits(requests_per_minute=10))
    assert key.startswith("rnnmt_") and len(key) > 40
    assert key.encode() not in (tmp_path / "keys.sqlite").read_bytes()
    record = store.lookup(key)
    assert record is not None and record.name == "alice" and record.active
    assert record.limits == Limits(10, None, None)
    assert store.lookup(key + "x") is None
    store.set_limits("alice", Limits(chars_per_day=500))
    assert store.lookup(key).limits == Limits(None, None, 500)
    store.revoke("alice")
    assert not store.lookup(key).active
    assert KeyStore(tmp_path / "absent.sqlite").lookup(key) is None
    assert not (tmp_path / "absent.sqlite").exists()  # the service never creates the file


def test_keys_cli(tmp_path: Path) -> None:
    db = tmp_path / "keys.sqlite"
    key = add_key(db, "alice", "--requests-per-minute", "3")
    assert key.startswith("rnnmt_")
    listing = keys_cli(db, "list")
    assert "alice" in listing.stdout and "requests-per-minute=3" in listing.stdout and key not in listing.stdout
    again = keys_cli(db, "add", "--name", "alice")
    assert again.returncode == 2 and again.stderr.strip().startswith("rnnmt: error:")
    assert keys_cli(db, "revoke", "nobody").returncode == 2
    assert keys_cli(db, "set-limits", "alice", "--chars-per-day", "0").returncode == 2
    assert keys_cli(db, "revoke", "alice").returncode == 0
    assert "revoked" in keys_cli(db, "list").stdout


@pytest.fixture(scope="module")
def keyed_server(served_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    db = tmp_path_factory.mktemp("keys") / "keys.sqlite"
    env = {**SERVER_ENV, "RNNMT_KEYS_DB": str(db), "RNNMT_REQUIRE_API_KEY": "true"}
    with running_server(served_models_dir, env) as url:
        wait_ready(url)
        yield url, db


def test_required_keys_in_every_form(keyed_server: tuple[str, Path]) -> None:
    url, db = keyed_server
    with httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/health").status_code == 200 and http.get("/ready").status_code == 200
        missing = http.post("/translate", json=BODY)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "api_key_required"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = http.post("/translate", json=BODY, headers={"X-API-Key": "rnnmt_not-a-key"})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_api_key"
        key = add_key(db, "alice")  # added while the server runs: no restart
        assert http.post("/translate", json=BODY, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert http.post("/translate", json=BODY, headers={"X-API-Key": key}).status_code == 200
        lt = {"q": "one two", "source": "en", "target": "de", "api_key": key}
        assert http.post("/libretranslate/translate", data=lt).status_code == 200  # form, as its Python client
        assert http.post("/libretranslate/translate", json=lt).status_code == 200
        assert http.post("/libretranslate/translate", json={**lt, "api_key": "bad"}).status_code == 403
        assert http.post("/libretranslate/translate", json={**lt, "api_key": None}).status_code == 401
        settings = http.get("/libretranslate/frontend/settings").json()
        assert settings["keyRequired"] is True and settings["apiKeys"] is True and settings["charLimit"] == 5000
        assert keys_cli(db, "revoke", "alice").returncode == 0
        revoked = http.post("/translate", json=BODY, headers={"X-API-Key": key})
        assert revoked.status_code == 403 and revoked.json()["error"]["code"] == "revoked_api_key"
        metrics = http.get("/metrics").text
        assert 'rnnmt_key_requests_total{key="alice"} 4.0' in metrics
        assert 'rnnmt_key_rejections_total{key="alice",reason="revoked_key"} 1.0' in metrics
        assert key not in metrics


def test_key_limits_answer_429_with_headers(keyed_server: tuple[str, Path]) -> None:
    url, db = keyed_server
    key = add_key(db, "bob", "--requests-per-minute", "2")
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=url, timeout=60) as http:
        fresh_minute()
        first = http.post("/translate", json=BODY, headers=headers)
        assert first.status_code == 200
        assert first.headers["ratelimit-limit"] == "2" and first.headers["ratelimit-remaining"] == "1"
        assert http.post("/translate", json=BODY, headers=headers).status_code == 200
        over = http.post("/translate", json=BODY, headers=headers)
        assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(over.headers["retry-after"]) <= 60 and over.headers["ratelimit-remaining"] == "0"
        # Characters per day: a new limit takes effect on the next request.
        assert keys_cli(db, "set-limits", "bob", "--chars-per-day", "10").returncode == 0
        assert http.post("/translate", json=BODY, headers=headers).status_code == 200  # 7 characters
        big = http.post("/translate", json={**BODY, "text": "one two three"}, headers=headers)
        assert big.status_code == 429 and "characters" in big.json()["error"]["message"]
        assert http.post("/translate", json={**BODY, "text": "two"}, headers=headers).status_code == 200
        assert 'rnnmt_key_rejections_total{key="bob",reason="rate_limited"} 2.0' in http.get("/metrics").text


def test_anonymous_limits_per_address(served_models_dir: Path, tmp_path: Path) -> None:
    env = {**SERVER_ENV, "RNNMT_KEYS_DB": str(tmp_path / "k.sqlite"), "RNNMT_ANONYMOUS_REQUESTS_PER_MINUTE": "1"}
    with running_server(served_models_dir, env) as url, httpx.Client(base_url=url, timeout=60) as http:
        wait_ready(url)
        fresh_minute(margin_s=10.0)  # two requests
        assert http.post("/translate", json=BODY).status_code == 200
        assert http.post("/libretranslate/translate", json={"q": "one", "source": "en", "target": "de"}
                         ).status_code == 429
        assert http.get("/health").status_code == 200  # never limited


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it with apt)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port, process
    finally:
        process.kill()
        process.wait()


def test_quota_shared_by_two_replicas_through_redis(served_models_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "keys.sqlite"
    key = add_key(db, "carol", "--requests-per-minute", "4")
    with redis_server(tmp_path) as (port, redis), ExitStack() as stack:
        env = {**SERVER_ENV, "RNNMT_KEYS_DB": str(db), "RNNMT_LIMITS_STORAGE": f"redis://127.0.0.1:{port}"}
        urls = [stack.enter_context(running_server(served_models_dir, env)) for _ in range(2)]
        for url in urls:
            wait_ready(url)
        headers = {"Authorization": f"Bearer {key}"}
        fresh_minute(margin_s=10.0)  # six requests
        codes = [httpx.post(f"{urls[i % 2]}/translate", json=BODY, headers=headers, timeout=60).status_code
                 for i in range(6)]
        assert codes == [200, 200, 200, 200, 429, 429]  # 4 per minute in all, not 4 per replica
        redis.kill()
        redis.wait()
        # Fail-open (documented): without its quota store the service still serves, and says so in /metrics.
        after = [httpx.post(f"{url}/translate", json=BODY, headers=headers, timeout=60) for url in urls]
        assert [r.status_code for r in after] == [200, 200]
        assert "rnnmt_rate_limit_storage_errors_total 1.0" in httpx.get(f"{urls[0]}/metrics").text
