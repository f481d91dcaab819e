"""The lexical shortlist: which pieces a batch's vocabulary holds, and that searching it is searching the whole
vocabulary with every other piece masked (the same tokens, scores renormalized over the shortlist)."""

from __future__ import annotations

import pytest
import torch

from model.config import EOS_ID, PAD_ID
from model.errors import ModelLoadError
from model.search import SearchConfig, beam_search, greedy_search
from model.seq2seq import Seq2Seq
from model.shortlist import MAX_SHARE, ROW_MULTIPLE, SPECIALS, Shortlist, TargetVocabulary
from tests.model.test_seq2seq import reverse_batch, tiny_config
from training.shortlist import CooccurrenceCounts, ShortlistSettings, write_shortlist


class MaskedToVocabulary:
    """A model whose logits outside `ids` are -inf: the reference a shortlist search must equal."""

    def __init__(self, model: Seq2Seq, ids: torch.Tensor) -> None:
        self.model, self.ids = model, ids

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def decode_step(self, prev, state, encoded, vocab=None):
        assert vocab is None
        logits, state, weights = self.model.decode_step(prev, state, encoded)
        masked = torch.full_like(logits, float("-inf"))
        masked[self.ids] = logits[self.ids]
        return masked, state, weights


@pytest.fixture(scope="module")
def model() -> Seq2Seq:
    torch.manual_seed(7)
    return Seq2Seq(tiny_config("gru", "bahdanau")).eval()


@pytest.mark.parametrize("beam", [1, 3])
def test_search_over_a_shortlist_is_search_with_the_rest_masked(model: Seq2Seq, beam: int) -> None:
    src, lengths, _, _ = reverse_batch(torch.Generator().manual_seed(11), 6)
    ids = torch.tensor([0, 1, 2, 3, 5, 6, 9, 12, 13])  # specials at their own ids, then some digits
    config = SearchConfig(beam_size=beam, n_best=beam, max_repeats=2, length_penalty=0.8)
    run = greedy_search if beam == 1 else beam_search
    shortlisted = run(model, src, lengths, config, vocab=TargetVocabulary(ids)) if beam > 1 else \
        greedy_search(model, src, lengths, config, max_rows=4, vocab=TargetVocabulary(ids))
    masked = run(MaskedToVocabulary(model, ids), src, lengths, config)
    allowed = set(ids.tolist())
    for got, want in zip(shortlisted, masked):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert all(set(h.tokens) <= allowed for h in got)
        for g, w in zip(got, want):
            assert g.score == pytest.approx(w.score, abs=1e-5)
            assert g.log_prob == pytest.approx(w.log_prob, abs=1e-5)
    # the masked scores are renormalized: higher than the same tokens' scores over the whole vocabulary
    whole = run(model, src, lengths, config)
    assert any(g[0].tokens != w[0].tokens or g[0].log_prob > w[0].log_prob + 1e-6 for g, w in zip(shortlisted, whole))


def toy_shortlist(tgt_vocab: int = 1000, frequent: int = 20) -> Shortlist:
    ranked = torch.cat([torch.arange(SPECIALS), torch.arange(tgt_vocab - 1, SPECIALS - 1, -1)])  # high ids first
    table = torch.full((30, 3), -1, dtype=torch.long)
    table[5] = torch.tensor([100, 101, 102])
    table[6, 0] = 200
    return Shortlist(ranked, frequent, table)


def test_a_vocabulary_holds_specials_frequent_pieces_and_the_sources_candidates() -> None:
    shortlist = toy_shortlist()
    vocab = shortlist.vocabulary(torch.tensor([[5, 7, EOS_ID], [6, EOS_ID, PAD_ID]]))
    ids = vocab.ids.tolist()
    assert ids == sorted(ids) and len(ids) % ROW_MULTIPLE == 0
    assert ids[:SPECIALS] == list(range(SPECIALS))  # EOS_ID means EOS in rows and ids alike
    assert {100, 101, 102, 200} <= set(ids)  # the candidates of 5 and 6; 7 has none
    assert set(shortlist.ranked[SPECIALS: SPECIALS + 20].tolist()) <= set(ids)  # the frequent pieces
    # padded to a multiple of 64 with the next most frequent pieces, not with anything else
    padding = set(ids) - {0, 1, 2, 3, 100, 101, 102, 200} - set(shortlist.ranked[:20].tolist())
    ranks = {int(piece): rank for rank, piece in enumerate(shortlist.ranked)}
    assert max(ranks[p] for p in padding) < min(ranks[p] for p in set(range(1000)) - set(ids))


def test_a_vocabulary_over_half_of_all_pieces_is_none() -> None:
    shortlist = toy_shortlist(tgt_vocab=200, frequent=int(200 * MAX_SHARE) + 1)
    assert shortlist.vocabulary(torch.tensor([[5, EOS_ID]])) is None
    assert toy_shortlist(tgt_vocab=200, frequent=10).vocabulary(torch.tensor([[5, EOS_ID]])) is not None


def test_dice_keeps_the_translation_and_leaves_out_frequent_pieces(tmp_path) -> None:
    counts = CooccurrenceCounts(src_vocab=12, tgt_vocab=12)
    # source 5 ("Hund") always comes with target 8 ("dog"); target 4 ("the") is everywhere
    src = [[5, 6], [5, 7], [5], [6, 7], [6], [7]]
    tgt = [[4, 8], [4, 8, 9], [4, 8], [4, 10], [4, 10], [4, 9]]
    counts.add(src, tgt, weight=1.0)
    counts.add([[5]], [[4, 8, 11]], weight=0.5)  # weighted pairs count by their weight
    shortlist = counts.shortlist(ShortlistSettings(frequent=1, per_source=2))
    assert int(shortlist.ranked[0]) == 4 and shortlist.frequent == 1
    assert shortlist.table[5].tolist() == [8, 9]  # 4 is frequent, so never one; Dice: 9 0.36 > 11 0.25
    assert shortlist.table[6].tolist()[0] == 10
    assert shortlist.table[PAD_ID].tolist() == [PAD_ID, PAD_ID]  # no candidates (stored as -1)
    assert counts.joint[counts.codes == 5 * 12 + 11].tolist() == [0.5]

    path = write_shortlist(tmp_path, shortlist)
    loaded = Shortlist.load(path)
    assert torch.equal(loaded.ranked, shortlist.ranked) and torch.equal(loaded.table, shortlist.table)
    assert loaded.frequent == 1


def test_a_broken_shortlist_file_is_a_load_error(tmp_path) -> None:
    path = tmp_path / "shortlist.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot read shortlist"):
        Shortlist.load(path)
