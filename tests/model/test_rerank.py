"""Reranking with second opinions (model/rerank.py): the forced score is search's own score, the reranked order is
the documented sum, a translator only pairs with a model of the opposite direction as its reverse and with a
right-to-left model of its own direction as that; a right-to-left model trains and translates in reading order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from model.checkpoint import find_reverse_folder, find_right_to_left_folder
from model.config import EOS_ID, PAD_ID
from model.errors import InputError
from model.kernels import choose_kernel
from model.rerank import forced_log_probs
from model.search import SearchConfig, beam_search
from model.seq2seq import Seq2Seq
from model.translator import Translator
from tests.conftest import DE, EN
from tests.model.test_search import teacher_forced_log_prob
from tests.model.test_seq2seq import reverse_batch, tiny_config


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_forced_log_probs_equal_the_beams_own_scores(precision: str) -> None:
    """Every n-best hypothesis of a batch, scored together (padded to the longest), gets the log-probability
    beam search gave it, at the precision it searched in."""
    torch.manual_seed(3)
    model = Seq2Seq(tiny_config("gru", "bahdanau")).eval()
    model.use_kernel(choose_kernel(model.config, "cpu", precision))
    src, lengths, _, _ = reverse_batch(torch.Generator().manual_seed(5), 6)
    found = beam_search(model, src, lengths, SearchConfig(beam_size=3, n_best=3, max_len_b=6))
    rows = [(row, h) for row, hyps in enumerate(found) for h in hyps]
    assert len({len(h.tokens) for _, h in rows}) > 1  # the padding is exercised
    tgt = torch.nn.utils.rnn.pad_sequence([torch.tensor(h.tokens + [EOS_ID]) for _, h in rows], batch_first=True,
                                          padding_value=PAD_ID)
    index = torch.tensor([row for row, _ in rows])
    forced = forced_log_probs(model, src[index], lengths[index], tgt)
    # int8 quantizes each product's activations with one scale for all its rows, so a row's numbers move a little
    # with the rows beside it (18 rows here, 3 to 18 in the beam's steps): 0.14% at most, measured.
    tolerance = {"atol": 1e-4, "rtol": 0.0} if precision == "fp32" else {"atol": 1e-3, "rtol": 0.005}
    torch.testing.assert_close(forced, torch.tensor([h.log_prob for _, h in rows]), **tolerance)


def test_reranked_beams_follow_score_plus_weighted_reverse_score(tiny_model_dir: Path,
                                                                 tiny_reverse_model_dir: Path) -> None:
    forward, reverse = Translator.from_folder(str(tiny_model_dir)), Translator.from_folder(str(tiny_reverse_model_dir))
    forward.use_reverse(reverse)
    sources = ["three one four", "nine nine two six", "five"]
    weight = 2.0
    reranked = forward.translate(sources, forward.defaults.changed(beam_size=4, n_best=3, reverse_weight=weight))
    for source, translation in zip(sources, reranked):
        hyps = translation.hypotheses
        assert len(hyps) == 3
        ranks = [h.score + weight * h.source_log_prob for h in hyps]
        assert ranks == sorted(ranks, reverse=True)
        for h in hyps:  # the reverse model's teacher-forced log p(source | hypothesis), per source token
            hyp_ids = reverse.encode([h.text])[0].ids or [EOS_ID]  # an empty hypothesis: a source of EOS alone
            src_ids = reverse.bundle.tgt_tokenizer.encode([source])[0]
            expected = teacher_forced_log_prob(reverse.model, torch.tensor(hyp_ids), torch.tensor(len(hyp_ids)),
                                               src_ids)
            assert h.source_log_prob == pytest.approx(expected / (len(src_ids) + 1), abs=1e-4)
    plain = forward.translate(sources, forward.defaults.changed(beam_size=4, n_best=3, reverse_weight=0.0))
    assert all(h.source_log_prob is None for t in plain for h in t.hypotheses)
    # The reranked n-best is the plain full beam reordered: the same hypotheses, none invented.
    full = forward.translate(sources, forward.defaults.changed(beam_size=4, n_best=4, reverse_weight=0.0))
    for ranked, beam in zip(reranked, full):
        assert {h.text for h in ranked.hypotheses} <= {h.text for h in beam.hypotheses}


def test_only_a_model_of_the_opposite_direction_reranks(tiny_model_dir: Path, tiny_reverse_model_dir: Path,
                                                        tmp_path: Path) -> None:
    forward = Translator.from_folder(str(tiny_model_dir))
    with pytest.raises(InputError, match="not the reverse of en->de"):
        forward.use_reverse(Translator.from_folder(str(tiny_model_dir)))
    assert not forward.reranks(forward.defaults.changed(reverse_weight=1.0))  # none attached: plain beam
    os.symlink(tiny_model_dir, tmp_path / "en-de")
    os.symlink(tiny_model_dir, tmp_path / "en-de-copy")
    assert find_reverse_folder(tmp_path / "en-de") is None
    os.symlink(tiny_reverse_model_dir, tmp_path / "de-en")
    assert find_reverse_folder(tmp_path / "en-de") == tmp_path / "de-en"
    assert find_reverse_folder(tmp_path / "de-en") in (tmp_path / "en-de", tmp_path / "en-de-copy")


def test_a_right_to_left_model_learns_backwards_and_translates_in_reading_order(
        tiny_right_to_left_model_dir: Path) -> None:
    """Training feeds it each target last piece first and the translator turns its output back: it translates
    the tiny task as the left-to-right model does, each piece's attention row still on its own source word."""
    translator = Translator.from_folder(str(tiny_right_to_left_model_dir))
    assert translator.model.config.right_to_left
    sources = ["three one four", "nine two six five", "seven eight"]
    found = translator.translate(sources, translator.defaults.changed(beam_size=1, return_attention=True))
    assert [t.text for t in found] == ["vier eins drei", "fünf sechs zwei neun", "acht sieben"]
    for source, translation in zip(sources, found):
        hyp = translation.hypotheses[0]
        pieces = translation.src_pieces
        for row, target_word in zip(hyp.attention, hyp.text.split()):  # the German word of the English word
            english = EN[DE.index(target_word)]  # 'vier' attends to 'four' most
            focus = max(range(len(pieces)), key=lambda i: row[i])
            assert english.startswith(pieces[focus].lstrip("▁")) or pieces[focus].lstrip("▁") in english, \
                (source, target_word, pieces, row)


def test_reranked_beams_add_the_weighted_right_to_left_score(tiny_model_dir: Path, tiny_reverse_model_dir: Path,
                                                             tiny_right_to_left_model_dir: Path) -> None:
    forward = Translator.from_folder(str(tiny_model_dir))
    right_to_left = Translator.from_folder(str(tiny_right_to_left_model_dir))
    forward.use_reverse(Translator.from_folder(str(tiny_reverse_model_dir)))
    forward.use_right_to_left(right_to_left)
    sources = ["three one four", "nine nine two six", "five"]
    config = forward.defaults.changed(beam_size=4, n_best=3, reverse_weight=1.0, right_to_left_weight=3.0)
    for source, translation in zip(sources, forward.translate(sources, config)):
        hyps = translation.hypotheses
        ranks = [h.score + 1.0 * h.source_log_prob + 3.0 * h.right_to_left_log_prob for h in hyps]
        assert ranks == sorted(ranks, reverse=True)
        src_ids = right_to_left.encode([source])[0].ids
        for h in hyps:  # the right-to-left model's teacher-forced log p(hypothesis | source), its pieces reversed
            reversed_ids = right_to_left.bundle.tgt_tokenizer.encode([h.text])[0][::-1]
            expected = teacher_forced_log_prob(right_to_left.model, torch.tensor(src_ids), torch.tensor(len(src_ids)),
                                               reversed_ids)
            assert h.right_to_left_log_prob == pytest.approx(expected / (len(reversed_ids) + 1), abs=1e-4)
    alone = forward.translate(sources, config.changed(reverse_weight=0.0))
    assert all(h.source_log_prob is None and h.right_to_left_log_prob is not None
               for t in alone for h in t.hypotheses)


def test_only_a_right_to_left_model_of_the_same_direction_reranks_as_one(
        tiny_model_dir: Path, tiny_reverse_model_dir: Path, tiny_right_to_left_model_dir: Path,
        tmp_path: Path) -> None:
    forward = Translator.from_folder(str(tiny_model_dir))
    with pytest.raises(InputError, match="not a right-to-left model"):
        forward.use_right_to_left(Translator.from_folder(str(tiny_model_dir)))
    with pytest.raises(InputError, match="reranks its own direction"):
        forward.use_right_to_left(Translator.from_folder(str(tiny_reverse_model_dir)))
    assert not forward.reranks(forward.defaults.changed(right_to_left_weight=1.0))  # none attached
    # Beside each other, each folder finds its role: the right-to-left en->de folder is never taken for the reverse
    # of a de->en model.
    for name, folder in {"en-de": tiny_model_dir, "en-de-r2l": tiny_right_to_left_model_dir,
                         "de-en": tiny_reverse_model_dir}.items():
        os.symlink(folder, tmp_path / name)
    assert find_right_to_left_folder(tmp_path / "en-de") == tmp_path / "en-de-r2l"
    assert find_right_to_left_folder(tmp_path / "de-en") is None
    assert find_reverse_folder(tmp_path / "de-en") == tmp_path / "en-de"
    assert find_reverse_folder(tmp_path / "en-de") == tmp_path / "de-en"
