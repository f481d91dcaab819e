"""Search's feature-major GRU step computes what `step` + `vocab_major_logits` compute."""

from __future__ import annotations

import pytest
import torch

from model.seq2seq import Seq2Seq
from tests.model.test_seq2seq import reverse_batch, tiny_config


@pytest.mark.parametrize(("attention", "layers"), [("bahdanau", 1), ("bahdanau", 2), ("none", 1)])
def test_feature_major_step_matches_the_generic_step(attention: str, layers: int) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(tiny_config("gru", attention, decoder_layers=layers)).double().eval()
    decoder = model.decoder
    assert decoder.has_feature_major_step
    src, src_lengths, tgt_in, _ = reverse_batch(torch.Generator().manual_seed(3), batch=5, min_len=1, max_len=6)
    with torch.inference_mode():
        encoded = model.encode(src, src_lengths)
        fast_state = generic_state = model.init_state(encoded)
        for t in range(tgt_in.size(1)):
            embedded = decoder.embedding(tgt_in[:, t])
            fast_logits, fast_state, fast_weights = decoder.feature_major_step(embedded, fast_state, encoded)
            top, context, generic_state, weights = decoder.step(embedded, generic_state, encoded)
            generic_logits = decoder.vocab_major_logits(top, context, embedded)
            torch.testing.assert_close(fast_logits, generic_logits, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(fast_state.hidden, generic_state.hidden, rtol=1e-10, atol=1e-12)
            if attention == "bahdanau":
                torch.testing.assert_close(fast_weights, weights, rtol=1e-10, atol=1e-12)
            if t == 2:  # search reorders and joins states: the step must read any layout it is given
                order = torch.tensor([4, 0, 3, 1, 2])
                encoded = encoded.index_select(order).cat(encoded.narrow(0, 2))
                fast_state = fast_state.index_select(order).cat(fast_state.narrow(0, 2))
                generic_state = generic_state.index_select(order).cat(generic_state.narrow(0, 2))
                tgt_in = torch.cat([tgt_in[order], tgt_in[:2]])


def test_feature_major_step_is_for_gru_decoders_only() -> None:
    assert not Seq2Seq(tiny_config("lstm", "bahdanau")).decoder.has_feature_major_step
    assert not Seq2Seq(tiny_config("rnn", "none")).decoder.has_feature_major_step
