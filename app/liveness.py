"""GET /health answered at the ASGI edge, before FastAPI: liveness must stay quick when the service is not.

Under overload the event loop is shared with hundreds of requests a second; /health went through the whole
stack (routing, dependency solving, the response model) and waited behind them, and its p99 crossed the 50 ms
a liveness probe allows. Here it costs two `send` calls and touches no queue, lock or model. The route in
app/api.py stays for the OpenAPI document and answers the same bytes; the metrics still count /health (this
middleware sits inside MetricsMiddleware and DrainMiddleware, which adds `Connection: close` while draining).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from app.metrics import RouteLabel

log = logging.getLogger(__name__)

PATH = "/health"
BODY = b'{"status":"ok"}'  # what HealthResponse(status="ok") serializes to
HEADERS = [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")]


class LivenessMiddleware:
    """Pure ASGI middleware: 200 {"status": "ok"} for GET /health; everything else goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        scope["route"] = RouteLabel(PATH)
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
