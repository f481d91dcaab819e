"""Admission control in-process: the measured throughput, the fair share of the queue ahead of a request,
Retry-After from the drain time, early 503 (overloaded) rather than late 504, and no decoding of expired work."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.admission import RETRY_AFTER_MAX_S, Backlog, ThroughputMeter, retry_after
from app.batcher import DeadlineExceededError, MicroBatcher, QueueFullError
from tests.app.test_batcher import Recorder


def test_throughput_counts_busy_time_not_idle_time() -> None:
    meter = ThroughputMeter(time_constant_s=1e9)  # no decay: the rate is tokens / busy seconds
    assert meter.tokens_per_s is None and meter.seconds_for(100) is None
    meter.record(100, waiting_since=0.0, end=1.0)  # 1 s from arrival to the end of the decode
    meter.record(300, waiting_since=0.5, end=2.0)  # waiting already: busy back to back from 1.0
    assert meter.tokens_per_s == pytest.approx(400 / 2)
    meter.record(100, waiting_since=10.0, end=11.0)  # idle from 2.0 to 10.0: that does not count
    assert meter.tokens_per_s == pytest.approx(500 / 3)
    assert meter.seconds_for(1000) == pytest.approx(6.0)


def test_throughput_follows_the_recent_rate() -> None:
    meter = ThroughputMeter(time_constant_s=5.0)
    for second in range(60):  # a minute at 100 tokens/s
        meter.record(100, waiting_since=second, end=second + 1.0)
    for second in range(60, 120):  # then a minute at 10 tokens/s
        meter.record(10, waiting_since=second, end=second + 1.0)
    assert meter.tokens_per_s == pytest.approx(10.0, rel=0.01)


def test_retry_after_is_bounded_whole_seconds() -> None:
    # the nearest second: rounding up told 2 s for a drain of 1.1 s and 4 s for one of 3.1 s
    assert [retry_after(s) for s in (None, 0.0, 0.2, 1.1, 1.5, 2.1, 3.1, 59.5, 1e6)] == \
        [1, 1, 1, 1, 2, 2, 3, 60, RETRY_AFTER_MAX_S]


def test_retry_after_stays_within_a_factor_of_the_drain() -> None:
    for tenths in range(10, 600):  # every drain from 1 s to a minute, told in whole seconds
        drain_s = tenths / 10
        assert 1 / 1.5 <= retry_after(drain_s) / drain_s <= 1.5


def test_backlog_under_fair_queuing() -> None:
    queue = [("flood", 5)] * 10 + [("other", 3)] * 2
    backlog = Backlog(queue)
    assert (backlog.sentences, backlog.tokens, backlog.count("flood"), backlog.count("new")) == (12, 56, 10, 0)
    assert backlog.tokens_ahead("new", 1) == 5 + 3  # one sentence of each waiting client, then its own
    assert backlog.tokens_ahead("new", 2) == 10 + 6
    assert backlog.tokens_ahead("flood", 11) == 50 + 6  # all of its own, and every other client's
    assert backlog.tokens_ahead("other", 3) == 15 + 6  # its own two, and three of the flood's
    assert Backlog().tokens_ahead("new", 3) == 0
    backlog.add("new", 7)
    assert (backlog.sentences, backlog.tokens, backlog.tokens_ahead("new", 1)) == (13, 63, 5 + 3 + 7)


def test_backlog_agrees_with_the_queue_read_one_sentence_at_a_time() -> None:
    queue = [(c, t) for c, t in zip("abacabcaab" * 3, range(1, 31))]
    backlog = Backlog(queue)
    for client in "abcd":
        for n in range(0, 12):
            taken: dict[str, int] = {}
            expected = 0
            for owner, tokens in queue:  # the definition: all of its own, and n of each other client's
                if owner == client or taken.get(owner, 0) < n:
                    taken[owner] = taken.get(owner, 0) + (owner != client)
                    expected += tokens
            assert backlog.tokens_ahead(client, n) == expected


def make(decode: Recorder, **kwargs) -> MicroBatcher[str, str]:
    """Every sentence counts 10 tokens."""
    decode.tokens = lambda sentence: 10
    settings = {"max_batch_tokens": 1000, "max_batch_sentences": 1, "max_wait_s": 0.0, "max_queue": 100, **kwargs}
    return MicroBatcher(decode, **settings)


def test_admission_rejects_early_and_retry_after_is_the_drain_time() -> None:
    decode = Recorder(block=True)
    batcher = make(decode, max_queue=6)
    batcher.throughput.record(10, waiting_since=0.0, end=1.0)  # measured: 10 tokens/s, i.e. 1 s a sentence

    async def main() -> None:
        busy = asyncio.ensure_future(batcher.submit(["busy"], "o", 60.0, client="a"))
        await asyncio.to_thread(decode.started.wait, 5)  # decoding "busy" (10 tokens) until released
        queued = asyncio.ensure_future(batcher.submit([f"a{i}" for i in range(5)], "o", 60.0, client="a"))
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 5  # 50 tokens wait; 60 with the busy batch: 6 s to drain
        batcher._busy_taken = time.monotonic() + 1e-3  # the busy batch: its whole estimated second still to go
        with pytest.raises(QueueFullError) as own:  # client a: its 6th sentence waits for all 60 tokens + its own
            await batcher.submit(["a5"], "o", 5.0, client="a")
        assert (own.value.code, own.value.retry_after_s) == ("overloaded", 6)
        assert batcher.refusal("a", 5.0) is not None and batcher.refusal("b", 5.0) is None
        # client b goes before most of a's queue (fair queuing): busy + a's first + its own = 3 s < 5 s
        admitted = asyncio.ensure_future(batcher.submit(["b0"], "o", 5.0, client="b"))
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 6
        batcher._busy_taken = time.monotonic() + 1e-3
        early = batcher.refusal("c", 60.0)  # what the service can tell before it parses c's request
        assert early is not None and (early.code, early.retry_after_s) == ("queue_full", 7)
        with pytest.raises(QueueFullError) as full:  # the queue holds max_queue sentences: 70 tokens to drain
            await batcher.submit(["c0"], "o", 60.0, client="c")
        assert (full.value.code, full.value.retry_after_s) == ("queue_full", 7)
        decode.release.set()
        assert await busy == ["BUSY/o"] and await admitted == ["B0/o"] and len(await queued) == 5

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    assert decode.calls[1] == (["b0"], "o")  # b's turn came before a's queue
    assert batcher.throughput.tokens_per_s is not None


def test_nothing_measured_yet_admits() -> None:
    decode = Recorder(block=True)
    batcher = make(decode)

    async def main() -> None:
        busy = asyncio.ensure_future(batcher.submit(["busy"], "o", 60.0))
        await asyncio.to_thread(decode.started.wait, 5)
        waiting = [asyncio.ensure_future(batcher.submit([f"s{i}"], "o", 0.5)) for i in range(3)]
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 3  # no rate yet: no estimate, no early rejection
        decode.release.set()
        await busy
        await asyncio.gather(*waiting, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        batcher.close()


def test_expired_work_is_not_decoded() -> None:
    decode = Recorder(block=True)
    batcher = make(decode)

    async def main() -> None:
        busy = asyncio.ensure_future(batcher.submit(["busy"], "o", 60.0))
        await asyncio.to_thread(decode.started.wait, 5)
        with pytest.raises(DeadlineExceededError):  # its deadline passes while "busy" decodes: 504
            await batcher.submit(["late one", "late two"], "o", 0.1)
        assert batcher.queue_depth == 0
        decode.release.set()
        assert await busy == ["BUSY/o"]
        assert await batcher.submit(["after"], "o", 5.0) == ["AFTER/o"]

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    assert [sentences for sentences, _ in decode.calls] == [["busy"], ["after"]]


def test_retry_after_tracks_a_measured_drain() -> None:
    """A controlled queue: each decode call takes 0.1 s for 4 sentences of 10 tokens. Retry-After, told while 80
    sentences wait, against the time they then take (about 2 s): within 2x, a generous bound."""
    decode = Recorder(delay_s=0.1)
    batcher = make(decode, max_batch_sentences=4, max_wait_s=0.5, regroup_s=0.0)

    async def main() -> tuple[int, float]:
        for _ in range(3):  # measure the rate: full batches back to back
            await asyncio.gather(*(batcher.submit([f"w{i}"], "o", 60.0) for i in range(8)))
        decode.release.clear()
        waiting = [asyncio.ensure_future(batcher.submit([f"s{i}"], "o", 60.0)) for i in range(80)]
        await asyncio.sleep(0.05)
        refusal = batcher.refusal("other", timeout_s=0.0)  # any wait is too long: the 503 says the drain time
        assert refusal is not None and refusal.code == "overloaded"
        start = time.monotonic()
        decode.release.set()
        await asyncio.gather(*waiting)
        return refusal.retry_after_s, time.monotonic() - start

    decode.release.set()
    try:
        told, drained = asyncio.run(main())
    finally:
        batcher.close()
    assert 0.5 <= told / drained <= 2.0, (told, drained)
