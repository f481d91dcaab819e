"""Search invariants: beam 1 == greedy, batch == one at a time, scores == teacher-forced log-prob,
and beam search over the whole space == exhaustive enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch

from model.config import BOS_ID, EOS_ID
from model.continuous_batching import SplitSources
from model.errors import InputError
from model.search import SearchConfig, beam_search, greedy_search, length_penalty
from model.seq2seq import Seq2Seq
from tests.model.test_seq2seq import reverse_batch, tiny_config


@pytest.fixture(scope="module")
def model() -> Seq2Seq:
    """An untrained model: its distributions are flat, which makes ties and order bugs show."""
    torch.manual_seed(3)
    return Seq2Seq(tiny_config("gru", "bahdanau")).eval()


@pytest.fixture(scope="module")
def batch():
    src, lengths, _, _ = reverse_batch(torch.Generator().manual_seed(5), 8)
    return src, lengths


def teacher_forced_log_prob(model: Seq2Seq, src: torch.Tensor, length: torch.Tensor, tokens: list[int]) -> float:
    tgt_in = torch.tensor([[BOS_ID] + tokens])
    tgt_out = torch.tensor([tokens + [EOS_ID]])
    with torch.no_grad():
        log_probs = model(src.unsqueeze(0), length.view(1), tgt_in).log_softmax(-1)
    return float(log_probs.gather(2, tgt_out.unsqueeze(2)).sum())


def test_beam_size_one_is_greedy(model, batch) -> None:
    src, lengths = batch
    greedy = greedy_search(model, src, lengths, SearchConfig(beam_size=1, max_len_b=6))
    beam = beam_search(model, src, lengths, SearchConfig(beam_size=1, max_len_b=6))
    for g, b in zip(greedy, beam):
        assert g[0].tokens == b[0].tokens
        assert g[0].log_prob == pytest.approx(b[0].log_prob, abs=1e-5)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_batch_equals_one_at_a_time(model, batch, beam_size: int) -> None:
    src, lengths = batch
    config = SearchConfig(beam_size=beam_size, n_best=beam_size, max_len_b=6, return_attention=True)
    together = beam_search(model, src, lengths, config) if beam_size > 1 else greedy_search(model, src, lengths, config)
    for row in range(src.size(0)):
        one_src = src[row : row + 1, : int(lengths[row])]
        search = beam_search if beam_size > 1 else greedy_search
        alone = search(model, one_src, lengths[row : row + 1], config)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[row]]
        for a, t in zip(alone, together[row]):
            assert a.score == pytest.approx(t.score, abs=1e-5)
            torch.testing.assert_close(a.attention, t.attention)


@pytest.mark.parametrize("min_length", [0, 3])
def test_continuous_greedy_equals_one_at_a_time(model, batch, min_length: int) -> None:
    """With 3 rows for 8 sentences, sentences join the batch mid-decode (at other positions than the rows
    already there, with longer sources): every answer must still be the one it gets alone, from the
    separate beam-search code at beam size 1."""
    src, lengths = batch
    config = SearchConfig(beam_size=1, max_len_b=6, min_length=min_length, return_attention=True)
    together = greedy_search(model, src, lengths, config, max_rows=3)
    for row in range(src.size(0)):
        (alone,) = beam_search(model, src[row : row + 1, : int(lengths[row])], lengths[row : row + 1], config)[0]
        (joined,) = together[row]
        assert joined.tokens == alone.tokens and len(alone.tokens) + 1 >= min_length
        assert joined.log_prob == pytest.approx(alone.log_prob, abs=1e-5)
        torch.testing.assert_close(joined.attention, alone.attention)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_continuous_greedy_with_one_long_source(cell: str, monkeypatch) -> None:
    """One 40-token source among 3-6 token ones, longest first (as the Translator passes them): the other
    rows attend over their short sources only (SplitSources) and finished rows are refilled in place and
    cut to the shorter sources; every answer must still be the one it gets alone."""
    torch.manual_seed(4)
    model = Seq2Seq(tiny_config(cell, "bahdanau")).eval()
    src, lengths, _, _ = reverse_batch(torch.Generator().manual_seed(6), 24, min_len=2, max_len=5)
    long_src = torch.randint(4, 14, (1, 41), generator=torch.Generator().manual_seed(7))
    long_src[0, 40] = EOS_ID
    src = torch.cat([long_src, torch.cat([src, torch.zeros(24, 35, dtype=torch.long)], dim=1)])
    lengths = torch.cat([torch.tensor([41]), lengths])
    splits = []
    attend = SplitSources.attend
    monkeypatch.setattr(SplitSources, "attend",
                        lambda self, *args: splits.append(self.short_len) or attend(self, *args))
    # The untrained model ends sentences at their length limit: 24 steps for the long one, 5-7 for the rest.
    config = SearchConfig(beam_size=1, max_len_a=0.5, max_len_b=4, return_attention=True)
    together = greedy_search(model, src, lengths, config, max_rows=16)
    assert splits and max(splits) <= 6  # the short rows attended over at most 6 positions
    for row in range(src.size(0)):
        (alone,) = beam_search(model, src[row : row + 1, : int(lengths[row])], lengths[row : row + 1], config)[0]
        (joined,) = together[row]
        assert joined.tokens == alone.tokens
        assert joined.log_prob == pytest.approx(alone.log_prob, rel=1e-6)  # 24 float32 steps
        torch.testing.assert_close(joined.attention, alone.attention)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_scores_equal_teacher_forced_log_prob(model, batch, alpha: float) -> None:
    src, lengths = batch
    found = beam_search(model, src, lengths, SearchConfig(beam_size=3, n_best=3, length_penalty=alpha, max_len_b=6))
    for row, hyps in enumerate(found):
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            expected = teacher_forced_log_prob(model, src[row], lengths[row], h.tokens)
            assert h.log_prob == pytest.approx(expected, abs=1e-4)
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens) + 1, alpha), abs=1e-5)


def test_attention_rows_sum_to_one(model, batch) -> None:
    src, lengths = batch
    found = greedy_search(model, src, lengths, SearchConfig(beam_size=1, max_len_b=6, return_attention=True))
    for row, (h,) in enumerate(found):
        assert h.attention.shape == (len(h.tokens) + 1, int(lengths[row]))
        torch.testing.assert_close(h.attention.sum(1), torch.ones(len(h.tokens) + 1))


@pytest.mark.parametrize("stop_early", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_full_width_beam_matches_exhaustive_search(alpha: float, stop_early: bool) -> None:
    """6 producible tokens (all but EOS), at most 3 before EOS: 1 + 6 + 36 + 216 = 259 hypotheses in all."""
    torch.manual_seed(11)
    model = Seq2Seq(tiny_config(src_vocab_size=7, tgt_vocab_size=7, tie_embeddings="none")).eval()
    src, lengths = torch.tensor([[4, 5, 6, EOS_ID]]), torch.tensor([4])
    # a*src_len + b = 4 target positions at most (EOS included), so at most 3 real tokens
    config = SearchConfig(beam_size=259, max_len_a=0.0, max_len_b=4, length_penalty=alpha, stop_early=stop_early)
    best = max(
        (list(seq) for n in range(4) for seq in itertools.product([1, 4, 5, 6, 0, 2], repeat=n)),
        key=lambda seq: teacher_forced_log_prob(model, src[0], lengths[0], seq) / length_penalty(len(seq) + 1, alpha),
    )
    assert beam_search(model, src, lengths, config)[0][0].tokens == best


def test_bad_search_settings_are_typed_errors() -> None:
    with pytest.raises(InputError):
        SearchConfig(beam_size=0)
    with pytest.raises(InputError):
        SearchConfig(beam_size=2, n_best=3)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_exact_stopping_never_scores_lower(model, batch, alpha: float) -> None:
    """Searching on until no alive beam can win only adds finished candidates: the best can only improve."""
    src, lengths = batch
    early = beam_search(model, src, lengths, SearchConfig(beam_size=3, length_penalty=alpha, max_len_b=6))
    exact = beam_search(model, src, lengths, SearchConfig(beam_size=3, length_penalty=alpha, max_len_b=6,
                                                          stop_early=False))
    for e, x in zip(early, exact):
        assert x[0].score >= e[0].score - 1e-6
