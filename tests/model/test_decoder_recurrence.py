"""The decoder's hand-written GRU + attention recurrence (training) equals `step` repeated under autograd."""

from __future__ import annotations

import torch

from model.seq2seq import Seq2Seq
from tests.model.test_seq2seq import reverse_batch, tiny_config


def outputs_and_grads(model: Seq2Seq, fused: bool, src, src_lengths, tgt_in) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    decoder = model.decoder
    encoded = model.encode(src, src_lengths)
    embedded = decoder.embedding(tgt_in)
    state = decoder.init_state(encoded)
    recurrence = decoder.fused_recurrence if fused else decoder.stepwise_recurrence
    tops, contexts = recurrence(embedded, state, encoded)
    # A loss that weighs every output differently, so that every gradient path is exercised.
    weights_top = torch.linspace(-1, 1, tops.numel(), dtype=tops.dtype).view_as(tops)
    weights_ctx = torch.linspace(1, -2, contexts.numel(), dtype=tops.dtype).view_as(contexts)
    ((tops * weights_top).sum() + (contexts * weights_ctx).pow(2).sum()).backward()
    return [tops, contexts] + [p.grad for _, p in sorted(model.named_parameters())]


def test_fused_recurrence_matches_stepwise_autograd() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(tiny_config("gru", "bahdanau")).double()
    assert model.decoder.has_fused_recurrence
    src, src_lengths, tgt_in, _ = reverse_batch(torch.Generator().manual_seed(1), batch=6, min_len=1, max_len=7)
    fused = outputs_and_grads(model, True, src, src_lengths, tgt_in)
    stepwise = outputs_and_grads(model, False, src, src_lengths, tgt_in)
    names = ["tops", "contexts"] + [name for name, _ in sorted(model.named_parameters())]
    compared = []
    for name, a, b in zip(names, fused, stepwise, strict=True):
        if b is None and not name.startswith("decoder.readout"):
            raise AssertionError(f"{name} has no gradient")  # only the readout is outside the recurrence
        if b is None:
            assert a is None, name
            continue
        assert a.abs().max() > 0, name  # every output and gradient is exercised
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)
        compared.append(name)
    assert {"decoder.cells.0.weight_ih", "decoder.attention.energy_layer.weight", "encoder.rnn.weight_hh_l0"} < set(
        compared)


def test_training_forward_uses_the_fused_path_only_where_it_applies() -> None:
    assert Seq2Seq(tiny_config("gru", "bahdanau")).decoder.has_fused_recurrence
    assert not Seq2Seq(tiny_config("gru", "none")).decoder.has_fused_recurrence
    assert not Seq2Seq(tiny_config("lstm", "bahdanau")).decoder.has_fused_recurrence
    assert not Seq2Seq(tiny_config("gru", "bahdanau", decoder_layers=2)).decoder.has_fused_recurrence

