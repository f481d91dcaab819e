"""MicroBatcher in-process with stub translators: batching, grouping by options, back-pressure (503),
deadlines (504), cancellation, failures, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from app.batcher import BatcherClosedError, DeadlineExceededError, MicroBatcher, QueueFullError


class Recorder:
    """A translator (app.batcher.BatchTranslator) that upper-cases sentences and records each call; optionally
    blocks until released. Sentences are "encoded" as themselves, a word a token plus one; each is encoded once."""

    def __init__(self, block: bool = False, delay_s: float = 0.0,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.calls: list[tuple[list[str], object]] = []
        self.encoded: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()
        if not block:
            self.release.set()
        self.delay_s = delay_s
        self.tokens = count_tokens or (lambda sentence: len(sentence.split()) + 1)

    def encode(self, sentences: list[str]) -> list[str]:
        self.encoded.extend(sentences)
        return list(sentences)

    def count_tokens(self, sentence: str) -> int:
        return self.tokens(sentence)

    def translate_encoded(self, sentences: list[str], options: object) -> list[str]:
        return self(sentences, options)

    def __call__(self, sentences: list[str], options: object) -> list[str]:
        self.calls.append((list(sentences), options))
        self.started.set()
        self.release.wait(10)
        time.sleep(self.delay_s)
        return [f"{s.upper()}/{options}" for s in sentences]


def make(decode: Recorder, **kwargs) -> MicroBatcher[str, str]:
    settings = {"max_batch_tokens": 1000, "max_batch_sentences": 64, "max_wait_s": 0.05, "max_queue": 100, **kwargs}
    return MicroBatcher(decode, **settings)


def test_concurrent_requests_share_one_decode_call() -> None:
    decode = Recorder()
    batcher = make(decode)

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(batcher.submit([f"s{i}", f"t{i}"], "o", 5.0) for i in range(10)))

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert results == [[f"S{i}/o", f"T{i}/o"] for i in range(10)]
    assert len(decode.calls) == 1 and len(decode.calls[0][0]) == 20
    assert sorted(decode.encoded) == sorted(decode.calls[0][0])  # each sentence encoded once, on submission


def test_one_decode_call_uses_one_set_of_options() -> None:
    decode = Recorder()
    batcher = make(decode)

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(batcher.submit([f"s{i}"], "ab"[i % 2], 5.0) for i in range(8)))

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert results == [[f"S{i}/{'ab'[i % 2]}"] for i in range(8)]
    assert sorted(options for _, options in decode.calls) == ["a", "b"]
    for sentences, options in decode.calls:
        assert all("ab"[int(s[1:]) % 2] == options for s in sentences)


def test_limits_on_sentences_and_tokens() -> None:
    decode = Recorder(count_tokens=lambda s: len(s.split()) + 1)
    batcher = make(decode, max_batch_sentences=4, max_batch_tokens=9)

    async def main() -> None:
        await asyncio.gather(batcher.submit([f"x{i}" for i in range(10)], "o", 5.0),  # 2 tokens each
                             batcher.submit(["a b c d e f g h i j k"], "o", 5.0))  # alone: over the limit

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    sizes = [len(sentences) for sentences, _ in decode.calls]
    assert sum(sizes) == 11 and max(sizes) <= 4
    assert ["a b c d e f g h i j k"] in [sentences for sentences, _ in decode.calls]


def test_full_queue_raises_with_retry_after() -> None:
    decode = Recorder(block=True)
    batcher = make(decode, max_queue=2, max_wait_s=0.0)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.submit(["busy"], "o", 5.0))
        await asyncio.to_thread(decode.started.wait, 5)  # the worker is now stuck decoding "busy"
        waiting = asyncio.ensure_future(batcher.submit(["q1", "q2"], "o", 5.0))
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 2
        with pytest.raises(QueueFullError) as error:
            await batcher.submit(["one more"], "o", 5.0)
        assert error.value.retry_after_s >= 1
        decode.release.set()
        assert await first == ["BUSY/o"] and await waiting == ["Q1/o", "Q2/o"]

    try:
        asyncio.run(main())
    finally:
        batcher.close()


def test_request_bigger_than_the_queue_is_accepted_when_idle() -> None:
    batcher = make(Recorder(), max_queue=2)
    try:
        assert asyncio.run(batcher.submit(["a", "b", "c"], "o", 5.0)) == ["A/o", "B/o", "C/o"]
    finally:
        batcher.close()


def test_deadline_raises_and_the_batcher_keeps_working() -> None:
    decode = Recorder(delay_s=0.5)
    batcher = make(decode, max_wait_s=0.0)

    async def main() -> None:
        with pytest.raises(DeadlineExceededError):
            await batcher.submit(["slow"], "o", 0.1)
        decode.delay_s = 0.0
        await asyncio.sleep(0.5)
        assert await batcher.submit(["fast"], "o", 5.0) == ["FAST/o"]

    try:
        asyncio.run(main())
    finally:
        batcher.close()


def test_cancelled_request_leaves_the_queue() -> None:
    decode = Recorder(block=True)
    batcher = make(decode, max_wait_s=0.0)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.submit(["busy"], "o", 5.0))
        await asyncio.to_thread(decode.started.wait, 5)
        gone = asyncio.ensure_future(batcher.submit(["abandoned", "too"], "o", 5.0))
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 2
        gone.cancel()  # what a client disconnect does
        await asyncio.gather(gone, return_exceptions=True)
        assert batcher.queue_depth == 0
        decode.release.set()
        assert await first == ["BUSY/o"]
        assert await batcher.submit(["after"], "o", 5.0) == ["AFTER/o"]

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    decoded = [s for sentences, _ in decode.calls for s in sentences]
    assert "abandoned" not in decoded and decoded == ["busy", "after"]


def test_decode_error_reaches_the_request_and_the_worker_survives() -> None:
    class Failing(Recorder):
        def __call__(self, sentences: list[str], options: object) -> list[str]:
            if "boom" in sentences:
                raise ValueError("bad sentence")
            return sentences

    batcher = make(Failing(), max_wait_s=0.0)

    async def main() -> None:
        with pytest.raises(ValueError, match="bad sentence"):
            await batcher.submit(["boom"], "o", 5.0)
        assert await batcher.submit(["fine"], "o", 5.0) == ["fine"]

    try:
        asyncio.run(main())
    finally:
        batcher.close()


def test_close_fails_waiting_requests() -> None:
    decode = Recorder(block=True)
    batcher = make(decode, max_wait_s=0.0)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.submit(["busy"], "o", 5.0))
        await asyncio.to_thread(decode.started.wait, 5)
        waiting = asyncio.ensure_future(batcher.submit(["queued"], "o", 5.0))
        await asyncio.sleep(0.05)
        batcher.close(timeout_s=0.1)  # the worker is still busy with "busy"
        with pytest.raises(BatcherClosedError):
            await waiting
        decode.release.set()
        assert await first == ["BUSY/o"]  # the batch in flight still finishes
        with pytest.raises(BatcherClosedError):
            await batcher.submit(["late"], "o", 5.0)

    asyncio.run(main())


def test_batch_observer_sees_every_call() -> None:
    seen: list[tuple[int, int, float]] = []
    batcher = make(Recorder(), on_batch=lambda n, tokens, seconds: seen.append((n, tokens, seconds)))
    try:
        asyncio.run(batcher.submit(["a b", "c"], "o", 5.0))
    finally:
        batcher.close()
    assert [(n, tokens) for n, tokens, _ in seen] == [(2, 5)]


@pytest.mark.parametrize("regroup_s, expected", [(0.5, 8), (0.0, 4)])
def test_regrouping_keeps_concurrent_clients_in_one_batch(regroup_s: float, expected: int) -> None:
    """8 clients in a closed loop; half start while the first batch decodes. Without regrouping they
    alternate in two batches of 4 for good; with it, the worker waits for the answered clients to send
    again (they come back after 5 ms, far below the 0.5 s cap) and the next batches hold all 8."""
    decode = Recorder(delay_s=0.03)
    batcher = make(decode, max_wait_s=0.01, regroup_s=regroup_s)

    async def client(i: int, start_s: float) -> None:
        await asyncio.sleep(start_s)
        for j in range(6):
            await batcher.submit([f"c{i}r{j}"], "o", 10.0)
            await asyncio.sleep(0.005)  # the client's round trip

    async def main() -> None:
        await asyncio.gather(*(client(i, 0.0 if i < 4 else 0.015) for i in range(8)))

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    sizes = [len(sentences) for sentences, _ in decode.calls]
    assert sizes[2:5] == [expected] * 3, sizes


def test_fair_queuing_serves_a_single_sentence_client_in_the_next_small_batch() -> None:
    """A flood of 40 sentences from one client and then one sentence from another: the batch in flight is the
    flood's own (all of it, nobody else waited), the next batch takes the other client's sentence first and
    holds at most shared_batch_sentences, and the flood still completes."""
    decode = Recorder(block=True)
    batcher = make(decode, max_wait_s=0.0, shared_batch_sentences=4, max_batch_sentences=16)

    async def main() -> tuple[list[str], list[list[str]]]:
        first = asyncio.ensure_future(batcher.submit([f"a{i}" for i in range(16)], "o", 10.0, client="flood"))
        await asyncio.to_thread(decode.started.wait, 5)  # the first flood batch is being decoded
        flood = [asyncio.ensure_future(batcher.submit([f"f{r}-{i}" for i in range(8)], "o", 10.0, client="flood"))
                 for r in range(3)]
        single = asyncio.ensure_future(batcher.submit(["x"], "o", 10.0, client="single"))
        await asyncio.sleep(0.05)
        decode.release.set()
        return await single, await asyncio.gather(first, *flood)

    try:
        single, flood = asyncio.run(main())
    finally:
        batcher.close()
    assert single == ["X/o"] and sum(len(r) for r in flood) == 40
    sizes = [len(sentences) for sentences, _ in decode.calls]
    assert decode.calls[1][0][0] == "x" and sizes[:2] == [16, 4]  # shared while "single" waited
    assert max(sizes[2:]) == 16  # the flood alone again: full batches


def test_round_robin_between_clients_and_a_queue_share_per_client() -> None:
    decode = Recorder(block=True)
    batcher = make(decode, max_wait_s=0.0, max_queue=100, max_queue_per_client=6, shared_batch_sentences=4)

    async def main() -> None:
        warm = asyncio.ensure_future(batcher.submit(["w"], "o", 10.0, client="c"))
        await asyncio.to_thread(decode.started.wait, 5)
        a = asyncio.ensure_future(batcher.submit([f"a{i}" for i in range(6)], "o", 10.0, client="a"))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError, match="per client"):
            await batcher.submit(["a-more"], "o", 10.0, client="a")
        b = asyncio.ensure_future(batcher.submit(["b0", "b1"], "o", 10.0, client="b"))
        await asyncio.sleep(0.01)
        decode.release.set()
        await asyncio.gather(warm, a, b)

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    assert decode.calls[1][0] == ["a0", "b0", "a1", "b1"]  # in turn, each client's oldest first
    assert decode.calls[2][0] == ["a2", "a3", "a4", "a5"][: len(decode.calls[2][0])]
