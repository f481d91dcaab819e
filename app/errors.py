"""Every error becomes one JSON shape, in one place: {"error": {"code": str, "message": str}}.

Domain errors raised in model/ (RnnmtError), the batcher's back-pressure (queue full, deadline), request
validation (422), malformed JSON and non-UTF-8 bodies (400), unknown routes (404) and crashes (500).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.batcher import BatcherClosedError, DeadlineExceededError, QueueFullError
from model.errors import RnnmtError

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
              415: "unsupported_media_type", 422: "validation_error", 503: "unavailable"}


class ApiError(Exception):
    """An error with its HTTP status, a stable machine-readable code and a human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _location(loc: tuple | list) -> str:
    """('body', 'beam_size') -> 'beam_size'; ('body', 'text', 2) -> 'text[2]'."""
    parts = [str(p) for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "body"


def validation_message(exc: RequestValidationError) -> str:
    messages = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if tuple(err.get("loc", ())) == ("body",):
            if err.get("type") == "missing":
                msg = "the request body is missing: send a JSON object (Content-Type: application/json)"
            elif err.get("type") in ("model_attributes_type", "dict_type", "model_type"):
                msg = "the request body must be a JSON object sent with Content-Type: application/json"
        where = _location(err.get("loc", ()))
        messages.append(msg if where == "body" else f"{where}: {msg}")
    return "; ".join(messages) or "invalid request"


async def handle_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def handle_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        ctx = errors[0].get("ctx") or {}
        where = errors[0].get("loc", ("body", "?"))[-1]
        return error_response(400, "malformed_json",
                              f"request body is not valid JSON: {ctx.get('error', 'decode error')} at position {where}")
    return error_response(422, "validation_error", validation_message(exc))


async def handle_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        return error_response(400, "invalid_encoding", "request body is not valid UTF-8")
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        return error_response(400, "malformed_json", f"request body cannot be parsed: {exc.__cause__}")
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, code, message, getattr(exc, "headers", None))


async def handle_queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
    return error_response(503, exc.code, str(exc), {"Retry-After": str(exc.retry_after_s)})


async def handle_deadline(request: Request, exc: DeadlineExceededError) -> JSONResponse:
    return error_response(504, "deadline_exceeded", str(exc))


async def handle_closed(request: Request, exc: BatcherClosedError) -> JSONResponse:
    return error_response(503, "shutting_down", str(exc), {"Retry-After": "1"})


async def handle_rnnmt(request: Request, exc: RnnmtError) -> JSONResponse:
    return error_response(400, exc.code, str(exc))


async def handle_crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error (see the server log)")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the JSON error shape."""
    app.add_exception_handler(ApiError, handle_api_error)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(QueueFullError, handle_queue_full)
    app.add_exception_handler(DeadlineExceededError, handle_deadline)
    app.add_exception_handler(BatcherClosedError, handle_closed)
    app.add_exception_handler(RnnmtError, handle_rnnmt)
    app.add_exception_handler(Exception, handle_crash)
