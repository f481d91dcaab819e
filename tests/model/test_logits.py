"""Logit processors: length limits and the repetition guard, alone and inside greedy and beam search."""

from __future__ import annotations

import torch

from model.config import EOS_ID, ModelConfig
from model.logits import LengthLimits, RepetitionGuard, StepView, before_start
from model.search import SearchConfig, search
from model.seq2seq import Seq2Seq


def view(history: list[list[int]], window: int = 16) -> StepView:
    """Rows with these tokens so far, far from their length limit."""
    recent = before_start(window).repeat(len(history), 1)
    for i, h in enumerate(history):
        recent[i, window - min(len(h), window):] = torch.tensor(h[-window:], dtype=torch.long)
    lengths, longest = torch.tensor([len(h) for h in history]), max(map(len, history))
    return StepView(recent, lengths, torch.full((len(history),), 100), longest, 100 - longest)


def test_the_guard_masks_the_token_that_would_start_one_copy_too_many() -> None:
    logits = torch.zeros(20, 4)
    history = [[7, 7, 7], [3, 4, 3, 4, 3, 4], [5, 7, 7, 9], [1, 2, 1, 2, 1]]
    assert RepetitionGuard(max_repeats=3)(logits, view(history))
    masked = {(int(v), int(r)) for v, r in (logits == float("-inf")).nonzero()}
    assert masked == {(7, 0), (3, 1)}  # "7 7 7" may not get a 4th 7; "3 4" x3 may not start again


def test_length_limits_force_and_forbid_eos() -> None:
    logits = torch.zeros(10, 2)
    limited = StepView(torch.zeros(2, 0, dtype=torch.long), torch.tensor([1, 4]), torch.tensor([9, 5]), 4, 1)
    assert LengthLimits(min_length=2)(logits, limited)
    assert logits[EOS_ID, 0] == float("-inf") and logits[EOS_ID, 1] == 0  # row 0 too short, row 1 at its limit
    assert (logits[:, 1] == float("-inf")).sum() == 9


def test_search_never_repeats_an_ngram_more_than_allowed() -> None:
    torch.manual_seed(3)
    config = ModelConfig(src_vocab_size=12, tgt_vocab_size=12, emb_size=16, encoder_hidden=16, decoder_hidden=16,
                         attention_size=16, readout_size=16)
    model = Seq2Seq(config).eval()
    with torch.no_grad():
        model.tgt_embedding.weight.mul_(0.01)  # a model that barely looks at its input: it loops
    src = torch.randint(4, 12, (6, 3))
    lengths = torch.full((6,), 3)

    def longest_run(tokens: list[int]) -> int:
        best = 1
        for n in range(1, 5):
            for start in range(len(tokens)):
                copies = 1
                while tokens[start + copies * n: start + (copies + 1) * n] == tokens[start: start + n] and \
                        len(tokens[start: start + n]) == n:
                    copies += 1
                best = max(best, copies if start + n <= len(tokens) else 1)
        return best

    for beam in (1, 3):
        loose = search(model, src, lengths, SearchConfig(beam_size=beam, max_repeats=0, max_len_a=10))
        guarded = search(model, src, lengths, SearchConfig(beam_size=beam, max_repeats=2, max_len_a=10))
        assert max(longest_run(h[0].tokens) for h in loose) > 2  # the guard has something to do
        assert all(longest_run(h[0].tokens) <= 2 for h in guarded)


def guard_reference(history: list[int], repeats: int, ngram: int) -> set[int]:
    """The rule read plainly: for each n, are the last repeats*n tokens `repeats` copies of one n-gram?"""
    banned = set()
    for n in range(1, ngram + 1):
        window = repeats * n
        if len(history) >= window:
            tail = history[-window:]
            if all(tail[i] == tail[i - n] for i in range(n, window)):
                banned.add(tail[window - n])
    return banned


def test_the_guard_agrees_with_the_plain_rule_on_random_histories() -> None:
    generator = torch.Generator().manual_seed(0)
    for repeats, ngram in ((4, 4), (2, 3), (3, 1), (1, 2)):
        histories = []
        for _ in range(300):  # few symbols and planted repeats, so that every n and edge is hit
            length = int(torch.randint(0, 20, (1,), generator=generator))
            h = torch.randint(0, 3, (length,), generator=generator).tolist()
            n = int(torch.randint(1, ngram + 1, (1,), generator=generator))
            if length >= n and bool(torch.rand(1, generator=generator) < 0.5):
                h = h + h[-n:] * int(torch.randint(1, repeats + 1, (1,), generator=generator))
            histories.append(h[:24])
        logits = torch.zeros(3, len(histories))
        RepetitionGuard(repeats, ngram)(logits, view(histories, window=repeats * ngram))
        for row, h in enumerate(histories):
            masked = set((logits[:, row] == float("-inf")).nonzero().flatten().tolist())
            assert masked == guard_reference(h, repeats, ngram), (repeats, ngram, h)
