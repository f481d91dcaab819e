"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand: no extra dependency.

Requests by route and status, request latency, decode batch sizes and durations, queue depth, tokens
translated and cache hits. The batcher's worker thread records into the same objects, so every metric
takes a lock. A pure ASGI middleware counts requests (it sees the route template, not the raw path).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

LabelValues = tuple[str, ...]


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    parts = [f'{n}="{escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, *labels: str, value: float) -> None:
        with self._lock:
            self._values[labels] = value


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[LabelValues, list[float]] = {}  # bucket counts (non-cumulative) + [sum, count]

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
                    break
            series[-2] += value
            series[-1] += 1

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for labels, series in items:
            cumulative = 0.0
            bounds = [_number(b) for b in self.buckets] + ["+Inf"]
            counts = series[: len(self.buckets)] + [series[-1] - sum(series[: len(self.buckets)])]
            for bound, count in zip(bounds, counts):
                cumulative += count
                le = 'le="' + bound + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {_number(cumulative)}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, labels)} {_number(series[-2])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, labels)} {_number(series[-1])}")
        return lines


class Metrics:
    """All the service's metrics; one instance per app (on app.state), shared with the batchers."""

    def __init__(self) -> None:
        self.requests = Counter("rnnmt_http_requests_total", "HTTP requests by route, method and status.",
                                ("route", "method", "status"))
        self.latency = Histogram("rnnmt_http_request_duration_seconds", "HTTP request latency.", ("route",))
        self.batch_size = Histogram("rnnmt_batch_sentences", "Sentences per decode call.", ("model",),
                                    BATCH_BUCKETS)
        self.batch_seconds = Histogram("rnnmt_batch_duration_seconds", "Time per decode call.", ("model",))
        self.queue_depth = Gauge("rnnmt_queue_depth", "Sentences waiting to be decoded.", ("model",))
        self.sentences = Counter("rnnmt_sentences_translated_total", "Sentences decoded.", ("model",))
        self.tokens = Counter("rnnmt_tokens_translated_total", "Source tokens decoded.", ("model",))
        self.cache = Counter("rnnmt_cache_lookups_total", "Sentence cache lookups by result.", ("result",))
        self.rejected = Counter("rnnmt_requests_rejected_total", "Requests refused or abandoned, by reason.",
                                ("reason",))
        self.models = Gauge("rnnmt_models_loaded", "Model folders loaded.")
        self._all = [self.requests, self.latency, self.batch_size, self.batch_seconds, self.queue_depth,
                     self.sentences, self.tokens, self.cache, self.rejected, self.models]

    def batch_observer(self, model: str) -> Callable[[int, int, float], None]:
        """A callback for MicroBatcher(on_batch=...) recording one decode call of this model."""

        def observe(sentences: int, tokens: int, seconds: float) -> None:
            self.batch_size.observe(sentences, model)
            self.batch_seconds.observe(seconds, model)
            self.sentences.inc(model, amount=sentences)
            self.tokens.inc(model, amount=tokens)

        return observe

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


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
