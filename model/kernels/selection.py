"""Picking the next tokens from vocabulary-major logits (vocab, rows), as `Seq2Seq.decode_step` returns them.

Search needs three reductions over the vocabulary at every step: the log-normalizer, the argmax (greedy)
and the top 2k continuations of each sentence's beams (beam search). On CPU the reductions that also
return an index (`argmax`, `max(dim)`, `topk`) run about 10-20x slower than `amax` (torch 2.13, AVX2,
measured: 0.6 ms vs 0.03 ms on 64 x 8000). So one `amax` pass reduces the vocabulary to chunk maxima
(`chunk_maxima`); the log-normalizer takes its peak from those maxima, and both selections index only
inside the few winning chunks. They return exactly what `argmax` / `topk` would (argmax: the first maximum;
topk: values equal, order among equals unspecified, as with `topk`).

A chunk is interleaved: chunk c holds the tokens c, c + n, c + 2n, ... (n = the number of chunks). Its maxima
are then one `amax` over the leading dimension of a (size, n, rows) view, whose inner dimension is contiguous
in either memory layout the steps return: vocabulary-major, or a transposed view of row-major memory (the
int8/bf16 steps). Contiguous chunks of a row-major buffer reduced 3.5-4x slower (50 vs 210 us at 64 rows,
381 vs 1,311 us at 320, 10,000 pieces, 2 threads).
"""

from __future__ import annotations

import math

import torch

LOG2_E = 1.0 / math.log(2.0)


def chunk_size(vocab: int) -> int:
    """The largest divisor of `vocab` that is at most 64 (1 for a prime: then plain argmax/topk)."""
    return next(c for c in range(min(64, vocab), 0, -1) if vocab % c == 0)


def chunk_maxima(logits: torch.Tensor) -> torch.Tensor:
    """logits: (vocab, rows) -> the maximum of every (interleaved) chunk of the vocabulary: (vocab // size, rows).

    One pass over the logits that serves both the log-normalizer (its peak) and the selections.
    """
    vocab, rows = logits.shape
    size = chunk_size(vocab)
    if logits.stride(0) == 1 and rows > 1:  # a transposed view of (rows, vocab) memory: reduce that
        return logits.t().view(rows, size, vocab // size).amax(1).t()
    return logits.reshape(size, vocab // size, rows).amax(0)


def log_normalizer(logits: torch.Tensor, chunk_max: torch.Tensor) -> torch.Tensor:
    """logits: (vocab, rows) -> log sum_v exp(logits[v, row]): (rows,).

    exp(x) as 2 ** (x log2 e): torch's exp2 runs about 2x faster than its exp on CPU (torch 2.13, AVX2:
    0.18 vs 0.33 ms on 8000 x 64, medians of interleaved runs), and this is the one pass over all logits.
    """
    peak = chunk_max.amax(0)  # (rows,)
    # (logits - peak) log2 e in one pass: -peak log2 e + log2 e * logits, broadcast over the vocabulary
    return torch.add(peak * -LOG2_E, logits, alpha=LOG2_E).exp2_().sum(0).log_() + peak


def _chunk_tokens(chunk: torch.Tensor, num_chunks: int, size: int) -> torch.Tensor:
    """chunk (...) -> the tokens of each chunk, (..., size): chunk, chunk + n, chunk + 2n, ..."""
    return chunk.unsqueeze(-1) + num_chunks * torch.arange(size, device=chunk.device)


def argmax_over_vocab(logits: torch.Tensor, chunk_max: torch.Tensor) -> torch.Tensor:
    """logits: (vocab, rows) -> the index of the first maximum of every column: (rows,)."""
    vocab, rows = logits.shape
    if rows == 1:  # one sentence (the service's latency path): one argmax beats the ~10 ops below (15 vs 30 us)
        return logits.argmax(0)
    size = chunk_size(vocab)
    num_chunks = vocab // size
    peak, best_chunk = chunk_max.max(0)  # (rows,) each column's maximum and the first chunk holding it
    if logits.stride(0) == 1 and rows > 1:  # row-major memory, as in chunk_maxima: (rows, size, n)
        chunks = logits.t().view(rows, size, num_chunks)
        within = chunks.gather(2, best_chunk.view(rows, 1, 1).expand(rows, size, 1)).view(rows, size)
    else:  # (size, n, rows)
        chunks = logits.reshape(size, num_chunks, rows)
        within = chunks.gather(1, best_chunk.view(1, 1, rows).expand(size, 1, rows)).view(size, rows).t()
    best = best_chunk + num_chunks * within.argmax(1)  # the first maximum in that chunk: j ascending
    # Chunks interleave, so when two chunks share the maximum the first token may lie in the later chunk.
    tied = (chunk_max == peak).sum(0) > 1  # (rows,)
    if bool(tied.any()):
        best[tied] = logits[:, tied].argmax(0)
    return best


def top_candidates(logits: torch.Tensor, chunk_max: torch.Tensor, offsets: torch.Tensor, beams: int,
                   count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best `count` of all continuations of every sentence's beams.

    logits: (vocab, sentences * beams), column sentence * beams + beam; chunk_max: its `chunk_maxima`
    offsets: (sentences * beams,) added to every logit of a column (beam score minus log-normalizer)
    Returns candidate scores, source beam and token, each (sentences, count), best first.

    The top `count` values of a sentence lie in at most `count` chunks, and those chunks have the
    largest chunk maxima; so only `count` chunks per sentence are searched element by element.
    """
    vocab, columns = logits.shape
    sentences, size = columns // beams, chunk_size(vocab)
    num_chunks = vocab // size
    chunk_best = chunk_max + offsets  # (num_chunks, columns)
    chunk_best = chunk_best.view(num_chunks, sentences, beams).permute(1, 2, 0).reshape(sentences, -1)
    picked = chunk_best.topk(min(count, chunk_best.size(1)), dim=1).indices  # (sentences, picked) beam * chunks + chunk
    beam, chunk = torch.div(picked, num_chunks, rounding_mode="floor"), picked % num_chunks
    column = torch.arange(sentences, device=logits.device).unsqueeze(1) * beams + beam  # (sentences, picked)
    tokens = _chunk_tokens(chunk, num_chunks, size)  # (sentences, picked, size)
    values = logits[tokens, column.unsqueeze(2)] + offsets[column].unsqueeze(2)  # (sentences, picked, size)
    scores, flat = values.view(sentences, -1).topk(min(count, values[0].numel()), dim=1)  # (sentences, count)
    slot = torch.div(flat, size, rounding_mode="floor")  # which picked chunk
    return scores, beam.gather(1, slot), tokens.view(sentences, -1).gather(1, flat)
