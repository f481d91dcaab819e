"""Graceful shutdown: on SIGTERM the service drains instead of dying with requests in flight.

What uvicorn does by itself on SIGTERM (or SIGINT): within ~0.1 s it closes its listening socket (new
connections are refused), closes idle keep-alive connections, lets requests in flight finish (their responses
say `Connection: close`) for up to `timeout_graceful_shutdown` seconds (RNNMT_SHUTDOWN_GRACE_S), cancels what
is left, then runs the app's lifespan shutdown. The app itself hears of it only at that last step.

What this module adds, from the moment the signal arrives (a handler chained in front of uvicorn's):
- GET /ready answers 503 `shutting_down` at once, so a load balancer stops sending here;
- a request that still reaches the app (on a kept-alive connection, before uvicorn closes it) gets 503
  `shutting_down` with `Connection: close` and `Retry-After: 1`, instead of joining a queue that is going away;
- every response sent while draining says `Connection: close`.
/health and /metrics keep answering: the process is alive, and the drain is worth watching.
Requests already inside the app are not touched: the batcher keeps decoding until the lifespan ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
STILL_SERVED = frozenset({"/health", "/metrics"})  # liveness and metrics answer while draining


class Drain:
    """Whether the service is shutting down (set once, from a signal handler or the lifespan)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def draining(self) -> bool:
        return self._event.is_set()

    def begin(self) -> None:
        self._event.set()

    def hook_signals(self) -> Callable[[], None]:
        """Chain a handler in front of the current SIGTERM/SIGINT handlers (uvicorn's, while it serves) that
        starts the drain, then calls them. Returns a function that puts the previous handlers back. Signal
        handlers can be set only in the main thread: elsewhere (an app run by a test client) this does nothing."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

        def on_signal(sig: int, frame: FrameType | None) -> None:
            if not self.draining:
                self.begin()
                log.warning("%s: draining (new requests get 503, /ready 503); requests in flight finish",
                            signal.Signals(sig).name)
            handler = previous[sig]
            if callable(handler):
                handler(sig, frame)
            elif handler == signal.SIG_DFL:  # no server handles it: what the signal would have done
                signal.signal(sig, signal.SIG_DFL)
                signal.raise_signal(sig)

        for sig in SIGNALS:
            signal.signal(sig, on_signal)

        def restore() -> None:
            for sig, handler in previous.items():
                if signal.getsignal(sig) is on_signal:
                    signal.signal(sig, handler)

        return restore


def _shutting_down_body(path: str, cut_off: bool = False) -> bytes:
    message = ("the service is shutting down" if path != "/ready"
               else "the service is shutting down: send requests to another replica")
    if cut_off:
        message = "the service shut down before this request was finished (grace period over): send it again"
    return json.dumps({"error": {"code": "shutting_down", "message": message}}).encode()


async def _send_shutting_down(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class DrainMiddleware:
    """While draining: 503 `shutting_down` for new requests (but /health and /metrics), and `Connection: close`
    on every response."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining and scope["path"] not in STILL_SERVED:
            await _send_shutting_down(send, _shutting_down_body(scope["path"]))
            return
        started = False

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.drain.draining:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive, send_closing)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when the grace period ends, and would answer a bare 500: say what
            # happened in the API's terms instead (the batcher drops the request's sentences on the cancel).
            if not self.drain.draining or started:
                raise
            log.warning("%s cut off by the end of the shutdown grace period: answered 503", scope["path"])
            await _send_shutting_down(send, _shutting_down_body(scope["path"], cut_off=True))
