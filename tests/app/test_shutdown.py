"""Graceful shutdown: the drain middleware in-process, the signal hook with a real signal, and SIGTERM to a real
`rnnmt serve` with a long request in flight (it completes; the process exits 0)."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import threading
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.bench_serve import server_process
from app.shutdown import Drain, DrainMiddleware
from tests.app.conftest import SERVER_ENV, wait_ready
from tests.conftest import EN


def make_app(drain: Drain, entered: asyncio.Event, release: asyncio.Event) -> FastAPI:
    app = FastAPI()
    app.add_middleware(DrainMiddleware, drain=drain)

    @app.get("/ready")
    async def ready() -> dict:
        return {"status": "ready"}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/translate")
    async def translate() -> dict:
        entered.set()
        await release.wait()
        return {"translations": []}

    return app


def test_drain_answers_new_requests_with_503_and_closes_connections() -> None:
    drain = Drain()

    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()
        transport = httpx.ASGITransport(app=make_app(drain, entered, release))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/ready")).status_code == 200
            in_flight = asyncio.ensure_future(client.post("/translate"))
            await entered.wait()
            drain.begin()  # what SIGTERM does
            ready = await client.get("/ready")
            assert ready.status_code == 503 and ready.json()["error"]["code"] == "shutting_down"
            new = await client.post("/translate")
            assert new.status_code == 503 and new.json()["error"]["code"] == "shutting_down"
            assert new.headers["connection"] == "close" and new.headers["retry-after"] == "1"
            health = await client.get("/health")  # liveness still answers, closing its connection
            assert health.status_code == 200 and health.headers["connection"] == "close"
            release.set()
            finished = await in_flight  # the request that was inside completes
            assert finished.status_code == 200 and finished.json() == {"translations": []}
            assert finished.headers["connection"] == "close"

    asyncio.run(main())


def test_signal_hook_starts_the_drain_and_chains_to_the_previous_handler() -> None:
    received: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda sig, frame: received.append(sig))
    try:
        drain = Drain()
        unhook = drain.hook_signals()
        signal.raise_signal(signal.SIGTERM)
        assert drain.draining and received == [signal.SIGTERM]  # uvicorn's handler (here: the recorder) ran too
        unhook()
        signal.raise_signal(signal.SIGTERM)
        assert received == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, original)


def long_request(texts: int = 64, lines: int = 16) -> dict:
    """texts x lines distinct sentences (each is decoded: distinct, and the cache is off)."""
    def line(i: int) -> str:
        return " ".join(EN[(i // 10 ** k) % 10] for k in range(4))

    return {"text": ["\n".join(line(t * lines + j) for j in range(lines)) for t in range(texts)],
            "source": "en", "target": "de", "beam_size": 3}


def queue_depth(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("rnnmt_queue_depth{"))


def long_request_in_queue(url: str) -> tuple[threading.Thread, dict]:
    """POST the long request from a thread; return once its sentences wait in the server's queue."""
    result: dict = {}
    slow = threading.Thread(target=lambda: result.update(response=httpx.post(
        f"{url}/translate", json=long_request(), timeout=300)))
    slow.start()
    while queue_depth(url) == 0 and slow.is_alive():
        pass
    assert slow.is_alive(), "the long request finished before SIGTERM: make it longer"
    return slow, result


def test_sigterm_drains_the_real_server(served_models_dir: Path, tmp_path: Path) -> None:
    env = {**SERVER_ENV, "RNNMT_CACHE_SIZE": "0", "RNNMT_MAX_BATCH_SENTENCES": "1", "RNNMT_MAX_WAIT_MS": "0",
           "RNNMT_REQUEST_TIMEOUT_S": "300", "RNNMT_SHUTDOWN_GRACE_S": "300"}
    with server_process(served_models_dir, env, log_file=tmp_path / "serve.log") as server:
        wait_ready(server.url)
        port = int(server.url.rsplit(":", 1)[1])
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a kept-alive connection, idle
        kept.request("GET", "/health")
        assert kept.getresponse().read() and kept.sock is not None

        slow, result = long_request_in_queue(server.url)
        server.process.send_signal(signal.SIGTERM)

        # A new request on the kept-alive connection: 503 shutting_down if it reaches the app before uvicorn
        # closes idle connections (~0.1 s after the signal), else the connection is closed. Never served.
        try:
            kept.request("POST", "/translate", body=json.dumps({"text": "one", "source": "en", "target": "de"}),
                         headers={"Content-Type": "application/json"})
            answer = kept.getresponse()
            error = json.loads(answer.read())["error"]
            assert (answer.status, error["code"], answer.getheader("connection")) == (503, "shutting_down", "close")
        except (ConnectionError, http.client.RemoteDisconnected):
            pass  # closed by the server's shutdown
        # A new connection: refused (the listening socket is closed) or, in the same first moment, 503.
        try:
            late = httpx.post(f"{server.url}/translate", json={"text": "one", "source": "en", "target": "de"},
                              timeout=30)
            assert late.status_code == 503 and late.json()["error"]["code"] == "shutting_down"
        except httpx.TransportError:
            pass

        slow.join(300)
        response = result["response"]
        assert response.status_code == 200  # the request in flight completed
        translations = response.json()["translations"]
        assert len(translations) == 64 and all(item["text"].strip() for item in translations)
        assert server.process.wait(60) == 0  # exit 0 after the drain
    log = (tmp_path / "serve.log").read_text()
    assert "SIGTERM: draining" in log and "Traceback" not in log


def test_a_request_cut_off_by_the_grace_period_gets_503_not_500(served_models_dir: Path, tmp_path: Path) -> None:
    """When the grace period ends with a request still decoding, uvicorn cancels it: the answer is the API's 503
    `shutting_down` (retry elsewhere), not a bare 500, and the process still exits 0."""
    env = {**SERVER_ENV, "RNNMT_CACHE_SIZE": "0", "RNNMT_MAX_BATCH_SENTENCES": "1", "RNNMT_MAX_WAIT_MS": "0",
           "RNNMT_REQUEST_TIMEOUT_S": "300", "RNNMT_SHUTDOWN_GRACE_S": "0.2"}
    with server_process(served_models_dir, env, log_file=tmp_path / "serve.log") as server:
        wait_ready(server.url)
        slow, result = long_request_in_queue(server.url)
        server.process.send_signal(signal.SIGTERM)
        slow.join(60)
        response = result["response"]
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "shutting_down" and response.headers["retry-after"] == "1"
        assert server.process.wait(60) == 0
    assert "cut off by the end of the shutdown grace period" in (tmp_path / "serve.log").read_text()
