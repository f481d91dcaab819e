"""Admission control: how fast a model's queue drains, and how long a new request would wait in it.

The batcher's worker reports each decode call here (`ThroughputMeter.record`). The measured rate is source
tokens per wall-clock second while the worker had work, so it includes what decoding alone leaves out (the
gathering of a batch, the GIL shared with the event loop) and it weighs big and small batches by their real
share of time: a running mean per batch of "seconds per sentence" counted a one-sentence batch as much as a
64-sentence one, and under a flood said Retry-After 318 s for a queue that drained in about 30 s.

From the rate and the queue: the drain time (Retry-After of a 503, bounded to `RETRY_AFTER_MAX_S`) and a
request's expected wait, which the batcher compares with the request's deadline before queuing it (reject at
once with 503 rather than answer 504 after the deadline). The queue is read through a `Backlog` (running sums
of tokens per client) in O(clients), not O(queue): admission runs on the event loop for every request, and
under a flood it ran over a thousand queued sentences for each one refused.

Retry-After is the estimate rounded to the nearest whole second (at least 1): rounding up added up to a whole
second to drains of one or two seconds, and a soak at 2x capacity read 4 s for a queue that drained in 1.39 s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable

RETRY_AFTER_MIN_S = 1
RETRY_AFTER_MAX_S = 60  # beyond this a client should not plan on this replica at all


class ThroughputMeter:
    """Tokens decoded per second: an exponentially time-weighted ratio of tokens over busy seconds.

    Both sums decay by exp(-elapsed / time_constant_s), so the rate follows the last ~time_constant_s seconds
    of work (the current mix of sentence lengths and beam sizes) and equals tokens / seconds over that window.
    """

    def __init__(self, time_constant_s: float = 10.0) -> None:
        self.time_constant_s = time_constant_s
        self._tokens = 0.0
        self._seconds = 0.0
        self._last_end: float | None = None  # time.monotonic() at the end of the last decode call

    def record(self, tokens: int, waiting_since: float, end: float | None = None) -> None:
        """A decode call of `tokens` source tokens ended at `end`; the oldest sentence waiting when it was taken
        arrived at `waiting_since`.

        The call's share of time starts when the worker could first have started on it: at the end of the
        previous call when work was already waiting then (busy back to back), else when that sentence arrived.
        """
        end = time.monotonic() if end is None else end
        start = waiting_since if self._last_end is None else max(self._last_end, waiting_since)
        busy = max(end - start, 1e-6)
        decay = math.exp(-busy / self.time_constant_s)
        self._tokens = self._tokens * decay + tokens
        self._seconds = self._seconds * decay + busy
        self._last_end = end

    @property
    def tokens_per_s(self) -> float | None:
        """The measured rate, or None before the first decode call."""
        return self._tokens / self._seconds if self._seconds > 0 else None

    def seconds_for(self, tokens: float) -> float | None:
        """Expected seconds to decode `tokens` more tokens (None while nothing has been measured)."""
        rate = self.tokens_per_s
        return None if rate is None else tokens / rate


def retry_after(seconds: float | None) -> int:
    """Retry-After for an estimated wait: the nearest whole second, at least 1, at most RETRY_AFTER_MAX_S."""
    if seconds is None:
        return RETRY_AFTER_MIN_S
    return max(RETRY_AFTER_MIN_S, min(RETRY_AFTER_MAX_S, math.floor(seconds + 0.5)))


class Backlog:
    """The queue's source tokens by client, in queue order, as running sums: what admission reads of the queue.

    The batcher adds each new sentence (`add`) and builds a new Backlog whenever its worker takes or drops
    sentences; reads cost O(clients), whatever the queue's length.
    """

    def __init__(self, queue: Iterable[tuple[Hashable, int]] = ()) -> None:
        self._sums: dict[Hashable, list[int]] = {}  # client -> tokens of its first 1, 2, ... waiting sentences
        self.sentences = 0
        self.tokens = 0
        for client, tokens in queue:
            self.add(client, tokens)

    def add(self, client: Hashable, tokens: int) -> None:
        """One more sentence of `tokens` tokens at the end of the queue."""
        sums = self._sums.setdefault(client, [])
        sums.append((sums[-1] if sums else 0) + tokens)
        self.sentences += 1
        self.tokens += tokens

    def count(self, client: Hashable) -> int:
        """Sentences of this client waiting."""
        return len(self._sums.get(client, ()))

    def tokens_ahead(self, client: Hashable, own_sentences: int) -> int:
        """Source tokens decoded before a client's `own_sentences`-th waiting sentence, under fair queuing.

        Batches take the waiting clients' sentences in turn, so before the client's n-th sentence come at most
        n sentences of each other client (their oldest) and all of its own waiting ones: a client sending one
        sentence does not wait for a flood's thousand.
        """
        total = 0
        for owner, sums in self._sums.items():
            if owner == client:
                total += sums[-1]
            elif own_sentences > 0:
                total += sums[min(own_sentences, len(sums)) - 1]
        return total
