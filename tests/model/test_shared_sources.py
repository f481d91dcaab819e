"""Beam search's encoder output (model/shared_sources.py): one copy of each source for its k rows attends exactly
as k copies do."""

from __future__ import annotations

import pytest
import torch

from model.seq2seq import Seq2Seq
from model.shared_sources import SharedSources
from tests.model.test_seq2seq import reverse_batch, tiny_config


def test_shared_sources_attend_as_repeated_rows_do() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(tiny_config()).double().eval()
    beams = 3
    src, lengths, _, _ = reverse_batch(torch.Generator().manual_seed(1), batch=4, min_len=1, max_len=6)
    with torch.inference_mode():
        encoded = model.encode(src, lengths)
        rows = torch.arange(4).repeat_interleave(beams)
        repeated, shared = encoded.index_select(rows), SharedSources.of(encoded, beams)
        assert shared.outputs.size(0) == 4 and shared.final.size(0) == 4 * beams
        torch.testing.assert_close(shared.final, repeated.final, rtol=0, atol=0)
        query = torch.randn(4 * beams, model.config.attention_size, dtype=torch.float64)
        attention = model.decoder.attention
        for got, want in zip(shared.attend(attention, query), repeated.attend(attention, query)):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)  # context, then weights (padding 0)
        keep = torch.tensor([3, 1])
        kept_rows = (keep.unsqueeze(1) * beams + torch.arange(beams)).view(-1)
        for got, want in zip(shared.select_sentences(keep).attend(attention, query[kept_rows]),
                             repeated.index_select(kept_rows).attend(attention, query[kept_rows])):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="select_sentences"):
        shared.index_select(torch.tensor([0]))
