"""Model invariants: padding never changes a result; every cell kind learns a reverse task."""

from __future__ import annotations

import pytest
import torch

from model.config import BOS_ID, EOS_ID, PAD_ID, ModelConfig
from model.search import SearchConfig, greedy_search
from model.seq2seq import Seq2Seq

VOCAB = 14  # 4 specials + 10 digits


def tiny_config(cell: str = "gru", attention: str = "bahdanau", **changes) -> ModelConfig:
    base = dict(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, emb_size=16, cell=cell, encoder_hidden=24,
                decoder_hidden=32, attention=attention, attention_size=24, readout_size=16, dropout=0.0,
                emb_dropout=0.0, tie_embeddings="all")
    base.update(changes)
    return ModelConfig(**base)


def reverse_batch(generator: torch.Generator, batch: int, min_len: int = 2, max_len: int = 5):
    """Random digit strings (ids 4..13) and their reversals, padded, with EOS on the source."""
    lengths = torch.randint(min_len, max_len + 1, (batch,), generator=generator)
    src = torch.full((batch, max_len + 1), PAD_ID)
    tgt_in = torch.full((batch, max_len + 1), PAD_ID)
    tgt_out = torch.full((batch, max_len + 1), PAD_ID)
    for row, length in enumerate(lengths.tolist()):
        digits = torch.randint(4, VOCAB, (length,), generator=generator)
        src[row, :length], src[row, length] = digits, EOS_ID
        tgt_in[row, 0], tgt_in[row, 1 : length + 1] = BOS_ID, digits.flip(0)
        tgt_out[row, :length], tgt_out[row, length] = digits.flip(0), EOS_ID
    return src, lengths + 1, tgt_in, tgt_out


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_padding_changes_nothing(cell: str, layers: int) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(tiny_config(cell, encoder_layers=layers, decoder_layers=layers)).eval()
    src, lengths, tgt_in, _ = reverse_batch(torch.Generator().manual_seed(1), 6)
    padded_src = torch.cat([src, torch.full((6, 4), PAD_ID)], dim=1)
    with torch.no_grad():
        logits = model(src, lengths, tgt_in)
        logits_padded = model(padded_src, lengths, tgt_in)
        encoded, encoded_padded = model.encode(src, lengths), model.encode(padded_src, lengths)
    torch.testing.assert_close(logits, logits_padded)
    torch.testing.assert_close(encoded.final, encoded_padded.final)
    torch.testing.assert_close(encoded_padded.outputs[:, src.size(1):], torch.zeros(6, 4, 48))


def test_tied_embeddings_share_one_tensor() -> None:
    model = Seq2Seq(tiny_config(tie_embeddings="all"))
    assert model.src_embedding.weight is model.tgt_embedding.weight
    assert model.decoder.output_projection.weight is model.tgt_embedding.weight
    untied = Seq2Seq(tiny_config(tie_embeddings="none", readout_size=20))
    assert untied.decoder.output_projection.weight is not untied.tgt_embedding.weight


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("attention", ["bahdanau", "none"])
def test_learns_to_reverse_digits(cell: str, attention: str) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Seq2Seq(tiny_config(cell, attention, encoder_hidden=32, decoder_hidden=64))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        src, lengths, tgt_in, tgt_out = reverse_batch(generator, 64)
        logits = model(src, lengths, tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    src, lengths, _, tgt_out = reverse_batch(torch.Generator().manual_seed(99), 200)
    found = greedy_search(model, src, lengths, SearchConfig(beam_size=1))
    expected = [[t for t in row.tolist() if t not in (PAD_ID, EOS_ID)] for row in tgt_out]
    exact = sum(h[0].tokens == e for h, e in zip(found, expected)) / len(expected)
    # A vanilla RNN without attention sits at its capacity here: 0.885-0.90 depending on the CPU's kernels
    # (AVX-512/AMX machines round differently), from 0 by chance. The others reach 0.97-1.0.
    floor = 0.85 if (cell, attention) == ("rnn", "none") else 0.9
    assert exact >= floor, f"{cell}/{attention}: exact match {exact:.3f}"
