"""Prometheus metrics on prometheus_client: one `Metrics` facade per app (on app.state), shared with the batchers.

Requests by route and status, request latency, decode batch sizes and durations, queue depth, tokens
translated, cache hits, rejections, and per API key (by the key's name, "anonymous" without one) requests,
characters and rejections. A pure ASGI middleware counts requests (it sees the route template, not the raw path).

Several workers (`rnnmt serve --workers N`): with PROMETHEUS_MULTIPROC_DIR set before the worker processes import
prometheus_client, each one writes its values to files there and `render()` adds up every worker's files, so any
worker answers a scrape for all of them. `close()` at a worker's shutdown drops its live gauges; `render()` also
drops those of workers that died without shutting down (killed, or hung and replaced by uvicorn).
"""

from __future__ import annotations

import contextlib
import glob
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import prometheus_client as prom
from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ANONYMOUS = "anonymous"  # the `key` label of requests sent without an API key
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Labels are written in this order (the old hand-written format's; prometheus_client's writer sorts them).
LABEL_ORDER = ("route", "method", "status", "model", "result", "key", "reason", "pid", "le")


class _Metric:
    """A prometheus_client metric called with label values as positional arguments, as the rest of the app does."""

    def __init__(self, kind: type[prom.metrics.MetricWrapperBase], registry: prom.CollectorRegistry, name: str,
                 help_text: str, labelnames: Sequence[str] = (), **options) -> None:
        self.name, self.labelnames, self._registry = name, tuple(labelnames), registry
        self._metric = kind(name, help_text, self.labelnames, registry=registry, **options)

    def _series(self, labels: Sequence[str]):
        return self._metric.labels(*labels) if labels else self._metric

    def value(self, *labels: str) -> float:
        """This process's value of one series (0 when it was never touched)."""
        return self._registry.get_sample_value(self.name, dict(zip(self.labelnames, labels))) or 0.0


class Counter(_Metric):
    def __init__(self, registry: prom.CollectorRegistry, name: str, help_text: str,
                 labelnames: Sequence[str] = ()) -> None:
        super().__init__(prom.Counter, registry, name, help_text, labelnames)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._series(labels).inc(amount)


class Gauge(_Metric):
    def __init__(self, registry: prom.CollectorRegistry, name: str, help_text: str, labelnames: Sequence[str] = (),
                 multiprocess_mode: str = "all") -> None:
        super().__init__(prom.Gauge, registry, name, help_text, labelnames, multiprocess_mode=multiprocess_mode)

    def set(self, *labels: str, value: float) -> None:
        self._series(labels).set(value)


class Histogram(_Metric):
    def __init__(self, registry: prom.CollectorRegistry, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(prom.Histogram, registry, name, help_text, labelnames, buckets=buckets)

    def observe(self, value: float, *labels: str) -> None:
        self._series(labels).observe(value)


class Metrics:
    """All the service's metrics, in a registry of their own (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = registry = prom.CollectorRegistry()
        self.requests = Counter(registry, "rnnmt_http_requests_total", "HTTP requests by route, method and status.",
                                ("route", "method", "status"))
        self.latency = Histogram(registry, "rnnmt_http_request_duration_seconds", "HTTP request latency.", ("route",))
        self.batch_size = Histogram(registry, "rnnmt_batch_sentences", "Sentences per decode call.", ("model",),
                                    BATCH_BUCKETS)
        self.batch_seconds = Histogram(registry, "rnnmt_batch_duration_seconds", "Time per decode call.", ("model",))
        # Each worker has its own queues: the service's queue is their sum over the live workers.
        self.queue_depth = Gauge(registry, "rnnmt_queue_depth", "Sentences waiting to be decoded.", ("model",),
                                 multiprocess_mode="livesum")
        self.sentences = Counter(registry, "rnnmt_sentences_translated_total", "Sentences decoded.", ("model",))
        self.tokens = Counter(registry, "rnnmt_tokens_translated_total", "Source tokens decoded.", ("model",))
        self.cache = Counter(registry, "rnnmt_cache_lookups_total", "Sentence cache lookups by result.", ("result",))
        self.rejected = Counter(registry, "rnnmt_requests_rejected_total", "Requests refused or abandoned, by reason.",
                                ("reason",))
        # Each worker loads every model: one series per live worker (a `pid` label), so that a worker still
        # loading, or one that failed to, shows as such rather than hiding behind a max or a sum.
        self.models = Gauge(registry, "rnnmt_models_loaded", "Model folders loaded.", multiprocess_mode="liveall")
        self.key_requests = Counter(registry, "rnnmt_key_requests_total", "Requests by API key name.", ("key",))
        self.key_characters = Counter(registry, "rnnmt_key_characters_total", "Characters submitted by API key name.",
                                      ("key",))
        self.key_rejections = Counter(registry, "rnnmt_key_rejections_total",
                                      "Requests refused by API key name and reason.", ("key", "reason"))
        self.limiter_errors = Counter(registry, "rnnmt_rate_limit_storage_errors_total",
                                      "Failed calls to the rate limiter's storage.")
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self._scraped = registry
        if self.multiprocess_dir:
            self._scraped = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scraped, path=self.multiprocess_dir)

    def batch_observer(self, model: str) -> Callable[[int, int, float], None]:
        """A callback for MicroBatcher(on_batch=...) recording one decode call of this model."""

        def observe(sentences: int, tokens: int, seconds: float) -> None:
            self.batch_size.observe(sentences, model)
            self.batch_seconds.observe(seconds, model)
            self.sentences.inc(model, amount=sentences)
            self.tokens.inc(model, amount=tokens)

        return observe

    def render(self) -> str:
        """Text exposition format 0.0.4: this process's metrics, or every worker's in multiprocess mode."""
        if self.multiprocess_dir:
            self._forget_dead_workers()
        return exposition(self._scraped.collect())

    def close(self) -> None:
        """At a worker's shutdown, in multiprocess mode: its live gauges stop counting (its counters stay)."""
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)

    def _forget_dead_workers(self) -> None:
        for path in glob.glob(os.path.join(self.multiprocess_dir, "gauge_live*_*.db")):
            pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
            try:
                os.kill(pid, 0)  # signal 0: only asks whether the process exists
            except ProcessLookupError:
                log.info("forgetting the live gauges of worker %d, gone without shutting down", pid)
                with contextlib.suppress(FileNotFoundError):  # another worker's scrape got there first
                    multiprocess.mark_process_dead(pid, self.multiprocess_dir)
            except PermissionError:
                pass  # it exists


def exposition(families: Iterable[Metric]) -> str:
    """What prometheus_client's generate_latest writes, with labels in LABEL_ORDER and no `_created` series."""

    def escape(text: str, quotes: bool = True) -> str:
        text = text.replace("\\", r"\\").replace("\n", r"\n")
        return text.replace('"', r'\"') if quotes else text

    def rank(label: tuple[str, str]) -> tuple[int, str]:
        return (LABEL_ORDER.index(label[0]) if label[0] in LABEL_ORDER else len(LABEL_ORDER), label[0])

    lines: list[str] = []
    for family in sorted(families, key=lambda f: f.name):
        name = family.name + "_total" if family.type == "counter" else family.name
        lines += [f"# HELP {name} {escape(family.documentation, quotes=False)}", f"# TYPE {name} {family.type}"]
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(sample.labels.items(), key=rank))
            lines.append(f"{sample.name}{'{' + labels + '}' if labels else ''} {floatToGoString(sample.value)}")
    return "\n".join(lines) + "\n"


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header is 'Bearer <token>' (the scheme in any case), compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@dataclass(frozen=True)
class RouteLabel:
    """A route template for scope["route"], set by a middleware that answers before FastAPI routes the request
    (app/liveness.py), so that its answers are counted under their route."""

    path: str


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request by route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.inc(route, scope["method"], str(status))
            self.metrics.latency.observe(time.perf_counter() - start, route)
