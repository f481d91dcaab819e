"""A request-body size limit that answers with the service's JSON error (413) instead of plain text.

Bodies that announce a too large Content-Length are refused before they are read; chunked bodies are
counted while they are read, and the read fails with a 413 HTTPException as soon as they pass the limit.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response

log = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """Pure ASGI middleware: at most `max_bytes` of request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self, size: int | None = None) -> str:
        got = "" if size is None else f" ({size} bytes)"
        return f"the request body is too large{got}; the limit is {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            response = error_response(413, "payload_too_large", self._message(int(length)))
            await response(scope, receive, send)
            return
        received = 0

        async def receive_with_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, receive_with_limit, send)
