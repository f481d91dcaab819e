"""Recurrent encoder: embeddings -> stacked (bi)directional RNN/GRU/LSTM over a packed batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from model.config import ModelConfig

if TYPE_CHECKING:
    from model.attention import BahdanauAttention

RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class EncoderOutput:
    """What the decoder needs from the source, computed once per batch.

    outputs: (batch, src_len, enc_out) top-layer states of every source position
    final:   (batch, enc_out) last layer's final state, both directions concatenated
    mask:    (batch, src_len) True at real tokens, False at padding
    keys:    (batch, src_len, attention_size) U h_j of Bahdanau attention, or None without attention

    Search may plan how its rows attend otherwise (model/continuous_batching.py, SplitSources): the operations
    below return a plain EncoderOutput, without such a plan.
    """

    outputs: torch.Tensor
    final: torch.Tensor
    mask: torch.Tensor
    keys: torch.Tensor | None = None

    def attend(self, attention: BahdanauAttention, projected_query: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (batch, enc_out) and weights (batch, src_len) of every row over its whole source, for the
        decoder's projected query W s_{t-1} + b (batch, attention_size)."""
        return attention.attend(projected_query, self.keys, self.outputs, self.mask)

    def index_select(self, index: torch.Tensor) -> EncoderOutput:
        """Rows `index` of the batch (to expand sentences into beams or drop finished ones)."""
        return EncoderOutput(
            outputs=self.outputs.index_select(0, index),
            final=self.final.index_select(0, index),
            mask=self.mask.index_select(0, index),
            keys=None if self.keys is None else self.keys.index_select(0, index),
        )

    def narrow(self, start: int, length: int) -> EncoderOutput:
        """Rows start .. start + length - 1, as views."""
        keys = None if self.keys is None else self.keys.narrow(0, start, length)
        return EncoderOutput(outputs=self.outputs.narrow(0, start, length), final=self.final.narrow(0, start, length),
                             mask=self.mask.narrow(0, start, length), keys=keys)

    @property
    def src_len(self) -> int:
        return self.mask.size(1)

    def resized(self, src_len: int) -> EncoderOutput:
        """Padded (masked zeros) or cut (only padding may be cut) to `src_len` source positions, contiguous."""
        if src_len == self.src_len:
            return self

        def fit(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            if src_len < x.size(1):
                return x[:, :src_len].contiguous()
            return torch.cat([x, x.new_zeros(x.size(0), src_len - x.size(1), *x.shape[2:])], dim=1)

        return EncoderOutput(outputs=fit(self.outputs), final=self.final, mask=fit(self.mask), keys=fit(self.keys))

    def cat(self, other: EncoderOutput) -> EncoderOutput:
        """Both batches in one, padded to the longer source (padding is masked out, so no output changes)."""
        src_len = max(self.src_len, other.src_len)
        a, b = self.resized(src_len), other.resized(src_len)
        keys = None if a.keys is None else torch.cat([a.keys, b.keys])
        return EncoderOutput(outputs=torch.cat([a.outputs, b.outputs]), final=torch.cat([a.final, b.final]),
                             mask=torch.cat([a.mask, b.mask]), keys=keys)

    def put(self, index: torch.Tensor, other: EncoderOutput) -> EncoderOutput:
        """Rows `index` replaced by the rows of `other`, in place unless `other` has the longer source."""
        encoded = self.resized(max(self.src_len, other.src_len))
        other = other.resized(encoded.src_len)
        for mine, theirs in zip(encoded.tensors(), other.tensors()):
            mine.index_copy_(0, index, theirs)
        return EncoderOutput(outputs=encoded.outputs, final=encoded.final, mask=encoded.mask, keys=encoded.keys)

    def tensors(self) -> list[torch.Tensor]:
        return [x for x in (self.outputs, self.final, self.mask, self.keys) if x is not None]


class RecurrentEncoder(nn.Module):
    """Stacked recurrent encoder; packing makes the result independent of padding."""

    def __init__(self, config: ModelConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding
        self.emb_dropout = nn.Dropout(config.emb_dropout)
        self.rnn = RNN_CLASSES[config.cell](
            input_size=config.emb_size,
            hidden_size=config.encoder_hidden,
            num_layers=config.encoder_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
        )
        self.is_lstm = config.cell == "lstm"
        self.num_directions = 2 if config.bidirectional else 1
        self.run_rnn = self.rnn.__call__  # what runs self.rnn: the module, or a kernel's copy (Seq2Seq.use_kernel)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src: (batch, src_len) ids; src_lengths: (batch,) on any device.

        Returns outputs (batch, src_len, enc_out) and final (batch, enc_out).
        """
        embedded = self.emb_dropout(self.embedding(src))  # (batch, src_len, emb)
        packed = pack_padded_sequence(embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, hidden = self.run_rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))
        if self.is_lstm:
            hidden = hidden[0]  # the cell state stays inside the encoder
        # hidden: (layers * directions, batch, hidden) -> last layer, directions concatenated
        last = hidden[-self.num_directions:]  # (directions, batch, hidden)
        final = torch.cat(list(last), dim=-1)  # (batch, enc_out)
        return outputs, final
