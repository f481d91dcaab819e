"""Conditional recurrent decoder (Bahdanau et al. 2015, Section 3.1 and A.2.2; arXiv:1409.0473).

At step t, with the previous state s_{t-1} and previous target word y_{t-1}:
    c_t = attention(s_{t-1}, h)             (or the fixed encoder summary when attention is "none")
    s_t = RNN([E y_{t-1}; c_t], s_{t-1})      (stacked: upper layers read the layer below)
    o_t = tanh(W_o [s_t; c_t; E y_{t-1}])     (the "deep output" readout)
    p(y_t) = softmax(W_v o_t)                 (W_v may be tied to the target embedding E)

`step` is the recurrence alone, shared by teacher forcing and search. Teacher forcing collects
(s_t, c_t) for all steps and applies the readout and vocabulary projection in one matrix product.
This is the readable reference network. Faster ways to compute the same thing (a search step in
another layout or precision, a recurrence with a hand-written backward) live in model/kernels/, are
tested against this one, and are chosen once per model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.attention import BahdanauAttention
from model.config import ModelConfig
from model.encoder import EncoderOutput
from model.shortlist import TargetVocabulary

CELL_CLASSES: dict[str, type[nn.RNNCellBase]] = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}


class DecoderState(NamedTuple):
    """hidden: (layers, batch, decoder_hidden); cell: same shape for LSTM, else None."""

    hidden: torch.Tensor
    cell: torch.Tensor | None

    def index_select(self, index: torch.Tensor) -> DecoderState:
        """Rows `index` of the batch: reorders beams or drops finished sentences."""
        cell = None if self.cell is None else self.cell.index_select(1, index)
        return DecoderState(self.hidden.index_select(1, index), cell)

    def narrow(self, start: int, length: int) -> DecoderState:
        """Rows start .. start + length - 1 of the batch, as views."""
        cell = None if self.cell is None else self.cell.narrow(1, start, length)
        return DecoderState(self.hidden.narrow(1, start, length), cell)

    def cat(self, other: DecoderState) -> DecoderState:
        """Both batches in one (the rows of `other` after those of `self`)."""
        cell = None if self.cell is None else torch.cat([self.cell, other.cell], dim=1)
        return DecoderState(torch.cat([self.hidden, other.hidden], dim=1), cell)

    def put(self, index: torch.Tensor, other: DecoderState) -> DecoderState:
        """Rows `index` replaced by the rows of `other`, in place."""
        self.hidden.index_copy_(1, index, other.hidden)
        if self.cell is not None:
            self.cell.index_copy_(1, index, other.cell)
        return self


# (decoder, embedded (batch, tgt_len, emb), initial state, encoded) -> tops (batch, tgt_len, hidden), contexts
Recurrence = Callable[["ConditionalDecoder", torch.Tensor, DecoderState, EncoderOutput],
                      tuple[torch.Tensor, torch.Tensor]]


class ConditionalDecoder(nn.Module):
    def __init__(self, config: ModelConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.config = config
        self.embedding = embedding
        self.emb_dropout = nn.Dropout(config.emb_dropout)
        self.dropout = nn.Dropout(config.dropout)
        enc_out, hidden = config.encoder_output_size, config.decoder_hidden
        self.is_lstm = config.cell == "lstm"
        # s_0 = tanh(W_init h_final), one slice per layer (the cell state of an LSTM starts at zero).
        self.bridge = nn.Linear(enc_out, config.decoder_layers * hidden)
        self.attention = (
            BahdanauAttention(hidden, enc_out, config.attention_size) if config.attention == "bahdanau" else None
        )
        cell_class = CELL_CLASSES[config.cell]
        self.cells = nn.ModuleList(
            cell_class(config.emb_size + enc_out if layer == 0 else hidden, hidden)
            for layer in range(config.decoder_layers)
        )
        self.readout = nn.Linear(hidden + enc_out + config.emb_size, config.readout_size)
        self.output_projection = nn.Linear(config.readout_size, config.tgt_vocab_size, bias=False)
        if config.tie_embeddings != "none":
            self.output_projection.weight = embedding.weight  # (vocab, emb): press & wolf 2017

    def init_state(self, encoded: EncoderOutput) -> DecoderState:
        batch = encoded.final.size(0)
        layers, hidden = self.config.decoder_layers, self.config.decoder_hidden
        init = torch.tanh(self.bridge(encoded.final))  # (batch, layers * hidden)
        init = init.view(batch, layers, hidden).transpose(0, 1).contiguous()  # (layers, batch, hidden)
        return DecoderState(init, torch.zeros_like(init) if self.is_lstm else None)

    def step(
        self, prev_embedded: torch.Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState, torch.Tensor | None]:
        """One step of the recurrence.

        prev_embedded: (batch, emb) embedding of y_{t-1} (dropout already applied)
        Returns top state s_t (batch, hidden), context c_t (batch, enc_out), the new state and the
        attention weights (batch, src_len), or None without attention.
        """
        if self.attention is not None:
            context, weights = self.attend(self.attention.query_layer(state.hidden[-1]), encoded)
        else:
            context, weights = encoded.final, None  # the classic fixed context
        layer_input = torch.cat([prev_embedded, context], dim=-1)  # (batch, emb + enc_out)
        new_hidden, new_cell = [], []
        for layer, cell in enumerate(self.cells):
            if self.is_lstm:
                h, c = cell(layer_input, (state.hidden[layer], state.cell[layer]))
                new_cell.append(c)
            else:
                h = cell(layer_input, state.hidden[layer])
            new_hidden.append(h)
            layer_input = self.dropout(h) if layer + 1 < len(self.cells) else h
        new_state = DecoderState(torch.stack(new_hidden), torch.stack(new_cell) if self.is_lstm else None)
        return new_hidden[-1], context, new_state, weights

    def attend(self, projected_query: torch.Tensor, encoded: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (batch, enc_out) and weights (batch, src_len) for W s_{t-1} + b: (batch, attention_size)."""
        return encoded.attend(self.attention, projected_query)  # search may plan it (SplitSources, SharedSources)

    def readout_state(self, top: torch.Tensor, context: torch.Tensor, prev_embedded: torch.Tensor) -> torch.Tensor:
        """o_t for any leading shape: (..., hidden), (..., enc_out), (..., emb) -> (..., readout)."""
        return self.dropout(torch.tanh(self.readout(torch.cat([top, context, prev_embedded], dim=-1))))

    def logits(self, top: torch.Tensor, context: torch.Tensor, prev_embedded: torch.Tensor,
               vocab: TargetVocabulary | None = None) -> torch.Tensor:
        """Readout and vocabulary projection for any leading shape (..., hidden) -> (..., vocab), or only the
        rows of a shortlist's vocabulary (model/shortlist.py) -> (..., len(vocab))."""
        readout = self.readout_state(top, context, prev_embedded)
        if vocab is None:
            return self.output_projection(readout)
        return F.linear(readout, self.output_projection.weight[vocab.ids])

    def forward(self, tgt_in: torch.Tensor, encoded: EncoderOutput, recurrence: Recurrence | None = None
                ) -> torch.Tensor:
        """Teacher forcing. tgt_in: (batch, tgt_len) starting with BOS -> logits (batch, tgt_len, vocab).

        recurrence: what runs `step` over all target steps; default `stepwise_recurrence`, or a kernel
        computing the same (the model passes the one it chose, see model/kernels/).
        """
        embedded = self.emb_dropout(self.embedding(tgt_in))  # (batch, tgt_len, emb)
        state = self.init_state(encoded)
        run = recurrence or ConditionalDecoder.stepwise_recurrence
        tops, contexts = run(self, embedded, state, encoded)
        # All steps at once: one matrix product for the readout and one for the vocabulary.
        return self.logits(tops, contexts, embedded)

    def stepwise_recurrence(
        self, embedded: torch.Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`step` over all of embedded (batch, tgt_len, emb) -> tops (batch, tgt_len, hidden), contexts."""
        steps = []
        for prev_embedded in embedded.unbind(1):  # unbind, not [:, t]: its backward is one stack
            top, context, state, _ = self.step(prev_embedded, state, encoded)
            steps.append((top, context))
        tops, contexts = (torch.stack(x, 1) for x in zip(*steps))
        return tops, contexts
