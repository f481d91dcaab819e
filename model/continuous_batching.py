"""Rows of a continuously batched search (greedy_search): the sentences waiting for a row, encoded
ahead of need, and the attention split that keeps a few long sources from padding every row (search's own
plan for its rows, SplitSources; the model's EncoderOutput stays plain)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.attention import BahdanauAttention
from model.decoder import DecoderState
from model.encoder import EncoderOutput
from model.seq2seq import Seq2Seq


class EncodedQueue:
    """The sentences of a batch, encoded `chunk` at a time ahead of need and handed out in order.

    Encoding a chunk at once rather than the few sentences a refill needs: the encoder ran 1.4x faster
    at 64 rows than at 16 (measured).
    """

    def __init__(self, model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, chunk: int) -> None:
        self.model, self.src, self.src_lengths, self.chunk = model, src, src_lengths, chunk
        self.taken, self.start, self.end = 0, 0, 0  # sentences handed out; the encoded chunk [start, end)
        self.encoded: EncoderOutput | None = None
        self.state: DecoderState | None = None

    @property
    def remaining(self) -> int:
        return self.src.size(0) - self.taken

    def take(self, count: int) -> tuple[EncoderOutput, DecoderState, torch.Tensor]:
        """The next `count` sentences: encoder output, initial decoder state, their indices in the batch.

        They may be views of the encoded chunk; the queue never reads those rows again, so the caller
        may write into them (greedy_search refills rows in place).
        """
        pieces = []
        first = self.taken
        while self.taken < first + count:
            if self.taken == self.end:
                self.start, self.end = self.end, min(self.src.size(0), self.end + self.chunk)
                lengths = self.src_lengths[self.start: self.end]
                self.encoded = self.model.encode(self.src[self.start: self.end, : int(lengths.max())], lengths)
                self.state = self.model.init_state(self.encoded)
            n = min(first + count, self.end) - self.taken
            offset = self.taken - self.start
            pieces.append((self.encoded.narrow(offset, n), self.state.narrow(offset, n)))
            self.taken += n
        encoded, state = pieces[0]
        for more_encoded, more_state in pieces[1:]:
            encoded, state = encoded.cat(more_encoded), state.cat(more_state)
        return encoded, state, torch.arange(first, self.taken, device=self.src.device)


@dataclass
class SplitSources(EncoderOutput):
    """Encoder output with search's plan for its rows: only the rows `long_rows` (n,) have real source positions
    past `short_len`. Every row attends over the first short_len positions; then the long rows attend again over
    all positions and replace their results, so that the elementwise work over (batch, src_len, attention_size)
    follows the short sources, not the few long ones. Operations that change rows (EncoderOutput's) return a
    plain EncoderOutput: greedy_search plans again after them (fit_to_sources)."""

    long_rows: torch.Tensor = field(kw_only=True)
    short_len: int = field(kw_only=True)

    def attend(self, attention: BahdanauAttention, projected_query: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        short = self.short_len
        context, short_weights = attention.attend(projected_query, self.keys[:, :short], self.outputs[:, :short],
                                                  self.mask[:, :short])  # (batch, enc_out), (batch, short_len)
        rows = self.long_rows
        long_context, long_weights = attention.attend(projected_query[rows], self.keys[rows], self.outputs[rows],
                                                      self.mask[rows])  # (n, enc_out), (n, src_len)
        weights = short_weights.new_zeros(self.mask.shape)  # (batch, src_len)
        weights[:, :short] = short_weights
        return context.index_copy_(0, rows, long_context), weights.index_copy_(0, rows, long_weights)


# The fixed cost of attending twice, in row x source positions of attention's elementwise work
# (about 60 us for the extra small operations, against about 0.8 us per row and position).
SPLIT_COST = 80


def split_long_sources(encoded: EncoderOutput, row_lengths: list[int]) -> EncoderOutput:
    """`encoded` with its few longest sources set apart for a second attention pass (SplitSources), when that
    costs less.

    Attention's elementwise work is rows x padded source length. One 44-token source among 64 rows of
    12-19 made every row pay for 44 positions for the 53 steps it decoded: 9.3 ms per step against 7.4-8.2.
    """
    rows, full = len(row_lengths), encoded.src_len
    order = sorted(range(rows), key=row_lengths.__getitem__, reverse=True)
    best_cost, best_count = rows * full, 0
    for count in range(1, rows // 4 + 1):
        cost = rows * row_lengths[order[count]] + count * full + SPLIT_COST
        if cost < best_cost:
            best_cost, best_count = cost, count
    plain = (encoded.outputs, encoded.final, encoded.mask, encoded.keys)
    if best_count == 0:
        return EncoderOutput(*plain)
    long_rows = torch.tensor(order[:best_count], device=encoded.mask.device)
    return SplitSources(*plain, long_rows=long_rows, short_len=row_lengths[order[best_count]])


def fit_to_sources(encoded: EncoderOutput, row_lengths: list[int]) -> EncoderOutput:
    """`encoded` for rows whose sources have `row_lengths` tokens, after rows changed: without the padding
    that no row needs any more (only when that saves 1/8: it copies all rows), and with the few longest
    sources set apart (split_long_sources)."""
    if max(row_lengths) * 8 <= encoded.src_len * 7:
        encoded = encoded.resized(max(row_lengths))
    return split_long_sources(encoded, row_lengths) if encoded.keys is not None else encoded
