"""Beam search's encoder output: every source once, attended by its sentence's `beams` consecutive rows.

Beam search decodes k rows per sentence, all over the same source. Repeating the encoder's outputs and
attention keys k times (one copy per row) costs k times their memory, and a copy whenever rows are dropped;
here they keep one row per sentence, and attention broadcasts each over its k queries
(BahdanauAttention.attend's `group`). Only `final` (the decoder's initial state and, without attention,
its context) has one row per beam. Beams are reordered within a sentence without touching the source, so the
only change of rows is dropping whole sentences (`select_sentences`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from model.encoder import EncoderOutput

if TYPE_CHECKING:
    from model.attention import BahdanauAttention


@dataclass
class SharedSources(EncoderOutput):
    """outputs, mask, keys: (sentences, src_len, ...); final: (sentences * beams, enc_out)."""

    beams: int = field(kw_only=True)

    @classmethod
    def of(cls, encoded: EncoderOutput, beams: int) -> SharedSources:
        """The sentences of a plain encoder output, each for `beams` rows."""
        return cls(outputs=encoded.outputs, final=encoded.final.repeat_interleave(beams, dim=0), mask=encoded.mask,
                   keys=encoded.keys, beams=beams)

    def attend(self, attention: BahdanauAttention, projected_query: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """projected_query: (sentences * beams, attention_size) -> context (rows, enc_out), weights (rows, src_len)."""
        return attention.attend(projected_query, self.keys, self.outputs, self.mask, group=self.beams)

    def select_sentences(self, index: torch.Tensor) -> SharedSources:
        """Sentences `index` (sentences kept when others finish), with all their rows."""
        rows = (index.unsqueeze(1) * self.beams + torch.arange(self.beams, device=index.device)).view(-1)
        return SharedSources(outputs=self.outputs.index_select(0, index), final=self.final.index_select(0, rows),
                             mask=self.mask.index_select(0, index),
                             keys=None if self.keys is None else self.keys.index_select(0, index), beams=self.beams)

    def index_select(self, index: torch.Tensor) -> EncoderOutput:
        raise TypeError("SharedSources holds one row per sentence: select whole sentences (select_sentences)")

    def narrow(self, start: int, length: int) -> EncoderOutput:
        raise TypeError("SharedSources holds one row per sentence: select whole sentences (select_sentences)")
