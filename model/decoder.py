"""Conditional recurrent decoder (Bahdanau et al. 2015, Section 3.1 and A.2.2; arXiv:1409.0473).

At step t, with the previous state s_{t-1} and previous target word y_{t-1}:
    c_t = attention(s_{t-1}, h)             (or the fixed encoder summary when attention is "none")
    s_t = RNN([E y_{t-1}; c_t], s_{t-1})      (stacked: upper layers read the layer below)
    o_t = tanh(W_o [s_t; c_t; E y_{t-1}])     (the "deep output" readout)
    p(y_t) = softmax(W_v o_t)                 (W_v may be tied to the target embedding E)

`step` is the recurrence alone, shared by teacher forcing and search. Teacher forcing collects
(s_t, c_t) for all steps and applies the readout and vocabulary projection in one matrix product.
For the reference model (one GRU layer with attention) teacher forcing runs the same recurrence
through model/decoder_recurrence.py instead, whose hand-written backward is what makes training fast.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from model.attention import BahdanauAttention
from model.config import ModelConfig
from model.decoder_recurrence import gru_attention_recurrence
from model.encoder import EncoderOutput

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


def columns_product(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """bias + weight @ x^T for x (rows, in) row-major -> (out, rows), the orientation search steps use.

    The rows are padded with zeros to a multiple of 8 first: at 57 rows MKL took 2.99 ms for the step's
    four products unpadded in this orientation, 2.60 ms padded (and 3.36 vs 2.58 at 61): its kernels want
    whole 8-float vectors of columns. The result is a view of the first `rows` columns.
    """
    rows, pad = x.size(0), -x.size(0) % 8
    if pad:
        x = torch.cat([x, x.new_zeros(pad, x.size(1))])
    return torch.addmm(bias.unsqueeze(1), weight, x.t())[:, :rows]


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
        if encoded.long_rows is None:
            return self.attention.attend(projected_query, encoded.keys, encoded.outputs, encoded.mask)
        return self.attention.attend_split(projected_query, encoded.keys, encoded.outputs, encoded.mask,
                                           encoded.long_rows, encoded.short_len)

    @property
    def has_feature_major_step(self) -> bool:
        return self.config.cell == "gru"

    def feature_major_step(
        self, prev_embedded: torch.Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """`step` and `vocab_major_logits` in one, for GRU decoders in eval mode (search).

        Every matrix product is W @ x^T with x (rows, in) row-major, giving (out, rows) (`columns_product`).
        For the 5-64 rows of a search step MKL runs this up to 1.4x faster than x @ W^T on 2 cores
        (interleaved measurement: the step's four products take 2.36 vs 3.30 ms at 64 rows, 2.52 vs 3.14
        at 59, 0.81 vs 1.00 at 10). The x^T must be a transposed view: given a contiguous (in, rows) operand
        instead, MKL took 2.15 ms rather than 0.63 ms for the vocabulary projection at 5 rows. So
        activations stay row-major between products.
        prev_embedded: (rows, emb) -> logits (vocab, rows), the new state, attention (rows, src_len).
        """
        hidden = self.config.decoder_hidden
        if self.attention is not None:
            query = self.attention.query_layer
            projected = columns_product(query.weight, query.bias, state.hidden[-1])  # (att, rows)
            context, weights = self.attend(projected.t().contiguous(), encoded)  # (rows, enc_out), (rows, src_len)
        else:
            context, weights = encoded.final, None
        layer_input = torch.cat([prev_embedded, context], dim=1)  # (rows, emb + enc_out)
        new_hidden = []  # (rows, hidden) per layer
        for layer, cell in enumerate(self.cells):
            h = state.hidden[layer]  # (rows, hidden)
            input_gates = columns_product(cell.weight_ih, cell.bias_ih, layer_input)  # (3H, rows)
            hidden_gates = columns_product(cell.weight_hh, cell.bias_hh, h)  # (3H, rows)
            ru = input_gates[: 2 * hidden].add_(hidden_gates[: 2 * hidden]).sigmoid_()  # reset, update
            n = input_gates[2 * hidden:].addcmul_(ru[:hidden], hidden_gates[2 * hidden:]).tanh_()
            h = torch.addcmul(n, ru[hidden:], h.t() - n).t().contiguous()  # (rows, hidden): n + u (s - n)
            new_hidden.append(h)
            layer_input = h
        readout_input = torch.cat([new_hidden[-1], context, prev_embedded], dim=1)  # (rows, hidden + enc + emb)
        readout = columns_product(self.readout.weight, self.readout.bias, readout_input).tanh_()  # (readout, rows)
        logits = self.output_projection.weight @ readout.t().contiguous().t()  # (vocab, rows)
        return logits, DecoderState(torch.stack(new_hidden), None), weights

    def readout_state(self, top: torch.Tensor, context: torch.Tensor, prev_embedded: torch.Tensor) -> torch.Tensor:
        """o_t for any leading shape: (..., hidden), (..., enc_out), (..., emb) -> (..., readout)."""
        return self.dropout(torch.tanh(self.readout(torch.cat([top, context, prev_embedded], dim=-1))))

    def logits(self, top: torch.Tensor, context: torch.Tensor, prev_embedded: torch.Tensor) -> torch.Tensor:
        """Readout and vocabulary projection for any leading shape (..., hidden) -> (..., vocab)."""
        return self.output_projection(self.readout_state(top, context, prev_embedded))

    def vocab_major_logits(self, top: torch.Tensor, context: torch.Tensor, prev_embedded: torch.Tensor) -> torch.Tensor:
        """One step of a batch: (batch, ...) -> logits (vocab, batch).

        W_v @ o^T rather than o @ W_v^T: for batches of 16-64 rows MKL runs this orientation 2-2.5x
        faster (1.7 ms vs 4.4 ms for 64 x 256 x 8000 on 2 cores, measured), and search only reduces
        over the vocabulary anyway (model/selection.py).
        """
        return self.output_projection.weight @ self.readout_state(top, context, prev_embedded).t()

    def forward(self, tgt_in: torch.Tensor, encoded: EncoderOutput) -> torch.Tensor:
        """Teacher forcing. tgt_in: (batch, tgt_len) starting with BOS -> logits (batch, tgt_len, vocab)."""
        embedded = self.emb_dropout(self.embedding(tgt_in))  # (batch, tgt_len, emb)
        state = self.init_state(encoded)
        if self.has_fused_recurrence and not torch.is_autocast_enabled():
            tops, contexts = self.fused_recurrence(embedded, state, encoded)
        else:
            tops, contexts = self.stepwise_recurrence(embedded, state, encoded)
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

    @property
    def has_fused_recurrence(self) -> bool:
        return self.config.cell == "gru" and self.config.decoder_layers == 1 and self.attention is not None

    def fused_recurrence(
        self, embedded: torch.Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same as `stepwise_recurrence` for one GRU layer with attention, with a hand-written backward."""
        cell, attention, emb = self.cells[0], self.attention, self.config.emb_size
        # The embedding's share of the input gates, W_ih[:, :emb] e_t + b_ih, for all steps at once.
        emb_gates = nn.functional.linear(embedded.transpose(0, 1), cell.weight_ih[:, :emb], cell.bias_ih)  # (T, B, 3H)
        tops, contexts = gru_attention_recurrence(
            emb_gates, state.hidden[0], encoded.keys, encoded.outputs, encoded.mask,
            attention.query_layer.weight, attention.query_layer.bias, attention.energy_layer.weight,
            cell.weight_ih[:, emb:], cell.weight_hh, cell.bias_hh,
        )
        return tops.transpose(0, 1), contexts.transpose(0, 1)
