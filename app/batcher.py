"""Micro-batching: sentences of concurrent requests are decoded together in one worker thread per model.

The batcher serves one translator (a `BatchTranslator`: model/translator.py's Translator in the service). A
request's sentences are encoded once, when it is submitted (their token counts drive the batch limits and
admission), and put in a bounded queue; the request awaits an asyncio future. The worker thread takes the
oldest pending sentence, gathers the pending sentences with the *same* decoding settings (one translate call
uses one SearchConfig) until the batch is full (`max_batch_tokens`, `max_batch_sentences`) or the oldest
sentence has waited `max_wait_s`, translates them in one call off the event loop, and hands the results back
through the futures (`loop.call_soon_threadsafe`). After a batch, it waits up to `regroup_s` for the
clients that batch answered to send again, so that concurrent clients stay in one batch (see `_next_batch`).
Back-pressure and admission (app/admission.py): a full queue, or a request whose expected wait (what is left of
the batch being decoded, then the tokens ahead of it, at the measured tokens/s) exceeds its deadline, raises
QueueFullError at once (503, Retry-After: the estimated drain time; `refusal` asks without submitting); a request
whose deadline passes while queued raises DeadlineExceededError (504) and its sentences are not decoded; a
cancelled request (client gone) has its sentences removed from the queue.

Fair queuing: every request names its client (an API key or an address). A batch takes sentences from the
waiting clients in turn (round-robin, the client served longest ago first), one client may hold at most
`max_queue_per_client` sentences, and while more than one client waits a batch holds at most
`shared_batch_sentences`: a client sending one sentence at a time then waits for one small batch, not for a
flood of another client's 64-sentence batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from app.admission import Backlog, ThroughputMeter, retry_after

log = logging.getLogger(__name__)

S = TypeVar("S")  # a sentence as the translator encoded it
R = TypeVar("R")  # a sentence's translation
R_co = TypeVar("R_co", covariant=True)
BatchObserver = Callable[[int, int, float], None]  # (sentences, tokens, seconds) after each decode call


class BatchTranslator(Protocol[S, R_co]):
    """What a batcher serves: a model's Translator (model/translator.py; S = Source, R = Translation)."""

    def encode(self, texts: list[str]) -> list[S]:
        """The sentences encoded once for translation (called on the event loop: it must be quick)."""

    def count_tokens(self, sentence: S) -> int:
        """The size of an encoded sentence in source tokens (batch limits, admission, throughput)."""

    def translate_encoded(self, sentences: list[S], config: Any) -> Sequence[R_co]:
        """One result per sentence, in order, with one set of decoding settings (hashable: batches group on it)."""


class QueueFullError(Exception):
    """Rejected at admission; the client should retry after `retry_after_s` seconds. `code`: "queue_full" (no
    room in the queue) or "overloaded" (the expected wait exceeds the request's deadline)."""

    def __init__(self, message: str, retry_after_s: int, code: str = "queue_full") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.code = code


class DeadlineExceededError(Exception):
    """The request was not translated within its deadline."""


class BatcherClosedError(Exception):
    """The batcher is shutting down."""


@dataclass(eq=False)
class _Job:
    """One request: its futures' loop, its options, and the results gathered so far."""

    options: Hashable
    client: Hashable
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    deadline: float
    results: list[Any]
    remaining: int
    cancelled: bool = False


@dataclass(eq=False)
class _Item:
    """One sentence of a job waiting in the queue."""

    job: _Job
    index: int
    sentence: Any  # as the translator encoded it
    tokens: int
    enqueued: float = field(default_factory=time.monotonic)


def _resolve(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class MicroBatcher(Generic[S, R]):
    """Gathers sentences from concurrent requests and translates them in batches in one worker thread."""

    def __init__(self, translator: BatchTranslator[S, R], *, name: str = "model", max_batch_tokens: int = 2000,
                 max_batch_sentences: int = 64, max_wait_s: float = 0.005, regroup_s: float = 0.05,
                 max_queue: int = 1024, max_queue_per_client: int | None = None,
                 shared_batch_sentences: int | None = None, on_batch: BatchObserver | None = None) -> None:
        self.translator = translator
        self.name = name
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_sentences = max_batch_sentences
        self.max_wait_s = max_wait_s
        self.regroup_s = regroup_s
        self.max_queue = max_queue
        self.max_queue_per_client = max_queue_per_client or max_queue
        self.shared_batch_sentences = shared_batch_sentences or max_batch_sentences
        self.on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._backlog = Backlog()  # the pending sentences' tokens by client (admission reads this, not the queue)
        self._cond = threading.Condition()
        self._closed = False
        self.throughput = ThroughputMeter()  # tokens/s, for admission and Retry-After
        self._busy_tokens = 0  # source tokens of the batch being decoded
        self._busy_taken = 0.0  # when the worker took that batch (time.monotonic)
        self._busy_since = 0.0  # when the oldest sentence waiting at the time that batch was taken arrived
        self._free_since = 0.0  # when the worker finished its last batch (time.monotonic)
        self._answered = 0  # requests that the last batch completed
        self._requests = 0  # requests submitted so far
        self._requests_at_free = 0  # ... when the last batch finished
        self._answered_clients: set[Hashable] = set()  # clients whose requests the last batch completed
        self._batches = 0  # decode calls so far
        self._served: dict[Hashable, int] = {}  # client -> the batch that last took its sentences
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Sentences waiting (not counting the batch being decoded)."""
        return len(self._pending)

    async def submit(self, sentences: list[str], options: Hashable, timeout_s: float,
                     client: Hashable = None) -> list[R]:
        """Translate `sentences` with the decoding settings `options` for `client`; results in input order.
        Raises QueueFullError, DeadlineExceededError, BatcherClosedError, or whatever the translator raised."""
        if not sentences:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(options, client, loop.create_future(), loop, time.monotonic() + timeout_s,
                   [None] * len(sentences), len(sentences))
        encoded = self.translator.encode(sentences)
        items = [_Item(job, i, s, self.translator.count_tokens(s)) for i, s in enumerate(encoded)]
        with self._cond:
            if self._closed:
                raise BatcherClosedError("the service is shutting down")
            refusal = self._refusal(client, len(items), sum(item.tokens for item in items), timeout_s)
            if refusal is not None:
                raise refusal
            self._pending.extend(items)
            for item in items:
                self._backlog.add(client, item.tokens)
            self._requests += 1
            self._cond.notify()
        try:
            return await asyncio.wait_for(job.future, timeout_s)
        except asyncio.TimeoutError:
            self._drop(job)
            raise DeadlineExceededError(f"translation took longer than {timeout_s:g} s") from None
        except asyncio.CancelledError:
            self._drop(job)
            raise

    def refusal(self, client: Hashable, timeout_s: float, sentences: int = 1) -> QueueFullError | None:
        """The 503 that `submit` would raise now for any request of at least `sentences` sentences from `client`
        (whatever their length), or None. It never refuses what `submit` would accept at the same moment."""
        with self._cond:
            return self._refusal(client, sentences, 0, timeout_s)

    def _refusal(self, client: Hashable, sentences: int, tokens: int, timeout_s: float) -> QueueFullError | None:
        """Why a request of `sentences` sentences, `tokens` source tokens, cannot be queued now (called with the
        lock held): no room in the queue or in the client's share of it, or it could not be decoded within
        timeout_s at the measured rate. A request bigger than the whole queue is still accepted when nothing
        else waits. Every estimate counts what is left of the batch being decoded, then the tokens ahead."""
        backlog = self._backlog
        if not backlog.sentences:
            return None
        in_progress_s = self._in_progress_s(time.monotonic())

        def seconds(ahead: int) -> float | None:
            decode_s = self.throughput.seconds_for(ahead)
            return None if decode_s is None else in_progress_s + decode_s

        drain_s = seconds(backlog.tokens)
        if backlog.sentences + sentences > self.max_queue:
            return QueueFullError(f"{backlog.sentences} sentences are waiting for model {self.name}; retry later",
                                  retry_after(drain_s))
        own = backlog.count(client)
        if own and own + sentences > self.max_queue_per_client:
            return QueueFullError(f"{own} of your sentences are already waiting for model {self.name} (at most "
                                  f"{self.max_queue_per_client} per client); retry later",
                                  retry_after(seconds(backlog.tokens_ahead(client, own))))
        wait_s = seconds(backlog.tokens_ahead(client, own + sentences) + tokens)
        if wait_s is not None and wait_s > timeout_s:
            return QueueFullError(f"model {self.name} is overloaded: this request would wait about {wait_s:.0f} s, "
                                  f"longer than its {timeout_s:g} s deadline; retry later", retry_after(drain_s),
                                  code="overloaded")
        return None

    def _in_progress_s(self, now: float) -> float:
        """Expected seconds left of the batch being decoded (0 while none is): its estimate less its time so far."""
        if not self._busy_tokens:
            return 0.0
        whole_s = self.throughput.seconds_for(self._busy_tokens) or 0.0
        return max(0.0, whole_s - (now - self._busy_taken))

    def _set_pending(self, items: Iterable[_Item]) -> None:
        """Replace the queue (called with the lock held) and the backlog read from it."""
        self._pending = deque(items)
        self._backlog = Backlog((item.job.client, item.tokens) for item in self._pending)

    def _drop(self, job: _Job) -> None:
        """Forget a job that timed out or was cancelled: its queued sentences are not decoded."""
        with self._cond:
            job.cancelled = True
            before = len(self._pending)
            self._set_pending(item for item in self._pending if item.job is not job)
            removed = before - len(self._pending)
        if removed:
            log.debug("dropped %d queued sentences of a cancelled request", removed)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker; requests still waiting fail with BatcherClosedError."""
        with self._cond:
            self._closed = True
            waiting = list(self._pending)
            self._set_pending(())
            self._cond.notify_all()
        for job in {id(item.job): item.job for item in waiting}.values():
            self._call(job, _fail, BatcherClosedError("the service is shutting down"))
        self._thread.join(timeout_s)

    # ---- worker thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            answered, clients = self._decode_batch(batch)
            with self._cond:
                self._free_since, self._answered, self._requests_at_free = time.monotonic(), answered, self._requests
                self._busy_tokens = 0
                self._answered_clients = clients
                if len(self._served) > 4 * self.max_queue:  # forget clients that are gone
                    waiting = {item.job.client for item in self._pending}
                    self._served = {c: n for c, n in self._served.items() if c in waiting}

    def _next_batch(self) -> list[_Item] | None:
        """Block until a batch is ready (full, or its oldest sentence waited max_wait_s); None when closed."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if any(i.job.cancelled or i.job.deadline <= now for i in self._pending):
                    self._set_pending(i for i in self._pending if not i.job.cancelled and i.job.deadline > now)
                if not self._pending:
                    self._cond.wait()
                    continue
                head = self._head()
                batch, full = self._collect(head.job.options)
                ready_at = head.enqueued + self.max_wait_s
                waiting_clients = {item.job.client for item in self._pending}
                if (self._requests - self._requests_at_free < self._answered
                        or not self._answered_clients <= waiting_clients):
                    # Regroup: the clients that the last batch answered usually send again within a few ms.
                    # Waiting for them (at most regroup_s) keeps concurrent clients in one batch instead of
                    # two alternating halves, each of which would also wait for the other's decode.
                    ready_at = max(ready_at, self._free_since + self.regroup_s)
                wait = ready_at - now
                if full or wait <= 0:
                    taken = {id(item) for item in batch}
                    self._busy_since = self._pending[0].enqueued  # the queue is in arrival order
                    self._set_pending(i for i in self._pending if id(i) not in taken)
                    self._busy_tokens, self._busy_taken = sum(item.tokens for item in batch), now
                    return batch
                self._cond.wait(wait)
            return None

    def _head(self) -> _Item:
        """The oldest sentence of the client served longest ago: its options make the next batch."""
        firsts: dict[Hashable, _Item] = {}
        for item in self._pending:
            firsts.setdefault(item.job.client, item)
        return min(firsts.values(), key=lambda item: (self._served.get(item.job.client, -1), item.enqueued))

    def _collect(self, options: Hashable) -> tuple[list[_Item], bool]:
        """Pending sentences with these options, taken from the clients in turn (served longest ago first,
        each client's oldest first) within the limits; and whether the batch is full."""
        queues: dict[Hashable, deque[_Item]] = {}
        for item in self._pending:
            if item.job.options == options:
                queues.setdefault(item.job.client, deque()).append(item)
        clients = len({item.job.client for item in self._pending})
        max_sentences = self.max_batch_sentences if clients <= 1 else min(self.shared_batch_sentences,
                                                                           self.max_batch_sentences)
        turn = deque(sorted(queues, key=lambda c: (self._served.get(c, -1), queues[c][0].enqueued)))
        batch: list[_Item] = []
        tokens = 0
        while turn:
            client = turn.popleft()
            item = queues[client].popleft()
            if batch and (tokens + item.tokens > self.max_batch_tokens or len(batch) >= max_sentences):
                return batch, True
            batch.append(item)
            tokens += item.tokens
            if queues[client]:
                turn.append(client)
        full = len(batch) >= max_sentences or tokens >= self.max_batch_tokens
        return batch, full

    def _decode_batch(self, batch: list[_Item]) -> tuple[int, set[Hashable]]:
        """Decode one batch and hand out the results; returns how many requests it completed, and whose."""
        options = batch[0].job.options
        self._batches += 1
        for item in batch:
            self._served[item.job.client] = self._batches
        start = time.perf_counter()
        try:
            results = self.translator.translate_encoded([item.sentence for item in batch], options)
        except Exception as exc:  # the requests get the error; the worker lives on
            log.warning("decoding a batch of %d sentences failed: %s", len(batch), exc)
            for job in {id(item.job): item.job for item in batch}.values():
                self._call(job, _fail, exc)
            return 0, set()
        seconds = time.perf_counter() - start
        tokens = sum(item.tokens for item in batch)
        with self._cond:
            self.throughput.record(tokens, self._busy_since)
        completed: set[Hashable] = set()
        answered = 0
        for item, result in zip(batch, results):
            job = item.job
            job.results[item.index] = result
            job.remaining -= 1
            if job.remaining == 0:
                self._call(job, _resolve, job.results)
                completed.add(job.client)
                answered += 1
        if self.on_batch is not None:
            self.on_batch(len(batch), tokens, seconds)
        return answered, completed

    @staticmethod
    def _call(job: _Job, fn: Callable[[asyncio.Future, Any], None], value: Any) -> None:
        """Run fn(future, value) on the job's event loop (the future is not thread-safe)."""
        try:
            job.loop.call_soon_threadsafe(fn, job.future, value)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass
