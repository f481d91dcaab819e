"""Every exception becomes {"error": {"code", "message"}} with the right status (in-process, no model)."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from app.batcher import DeadlineExceededError, QueueFullError
from app.errors import ApiError, install_error_handlers
from app.metrics import Metrics, MetricsMiddleware
from model.errors import InputError


def make_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/queue")
    async def queue() -> None:
        raise QueueFullError("32 sentences are waiting", retry_after_s=3)

    @app.get("/overloaded")
    async def overloaded() -> None:
        raise QueueFullError("would wait longer than its deadline", retry_after_s=7, code="overloaded")

    @app.get("/deadline")
    async def deadline() -> None:
        raise DeadlineExceededError("too slow")

    @app.get("/domain")
    async def domain() -> None:
        raise InputError("bad input from model/")

    @app.get("/api")
    async def api() -> None:
        raise ApiError(413, "text_too_long", "too long")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("bug")

    return app


def test_error_shapes_and_statuses() -> None:
    metrics = Metrics()
    transport = httpx.ASGITransport(app=make_app(metrics), raise_app_exceptions=False)

    async def fetch(path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    expected = {"/queue": (503, "queue_full"), "/overloaded": (503, "overloaded"),
                "/deadline": (504, "deadline_exceeded"), "/domain": (400, "bad_input"),
                "/api": (413, "text_too_long"), "/crash": (500, "internal_error"), "/missing": (404, "not_found")}
    for path, (status, code) in expected.items():
        response = asyncio.run(fetch(path))
        assert response.status_code == status, path
        assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert asyncio.run(fetch("/queue")).headers["retry-after"] == "3"
    assert asyncio.run(fetch("/overloaded")).headers["retry-after"] == "7"
    assert metrics.requests.value("/crash", "GET", "500") == 1
    assert metrics.requests.value("unmatched", "GET", "404") == 1


def test_metrics_text_format() -> None:
    metrics = Metrics()
    metrics.latency.observe(0.02, "/translate")
    metrics.latency.observe(100.0, "/translate")
    metrics.batch_observer("m")(3, 12, 0.01)
    lines = metrics.render().splitlines()
    assert 'rnnmt_http_request_duration_seconds_bucket{route="/translate",le="0.025"} 1.0' in lines
    assert 'rnnmt_http_request_duration_seconds_bucket{route="/translate",le="30.0"} 1.0' in lines
    assert 'rnnmt_http_request_duration_seconds_bucket{route="/translate",le="+Inf"} 2.0' in lines
    assert 'rnnmt_http_request_duration_seconds_count{route="/translate"} 2.0' in lines
    assert 'rnnmt_batch_sentences_sum{model="m"} 3.0' in lines
    assert 'rnnmt_tokens_translated_total{model="m"} 12.0' in lines
    assert "# TYPE rnnmt_http_requests_total counter" in lines
