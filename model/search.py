"""Batched greedy and beam search over a Seq2Seq.

Both work on a whole batch of sentences at once: the encoder runs once, attention keys are cached in
the EncoderOutput, and sentences that finish are dropped from the batch so they stop costing work.
Beam search keeps alive and finished hypotheses in tensors (no Python loop over hypotheses in a step);
its scoring rule (top-k over scores + log-probs) is kept apart from the bookkeeping, as in fairseq.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from model.config import BOS_ID, EOS_ID, PAD_ID
from model.continuous_batching import EncodedQueue, fit_to_sources
from model.errors import InputError
from model.kernels.selection import argmax_over_vocab, chunk_maxima, log_normalizer, top_candidates
from model.logits import LogitProcessor, StepView, before_start, processors, recent_tokens, window_of
from model.logits import apply as apply_processors
from model.seq2seq import Seq2Seq
from model.shared_sources import SharedSources
from model.shortlist import TargetVocabulary


@dataclass(frozen=True)
class SearchConfig:
    """How to search: the one decoding-settings type, from the HTTP request and the CLI down to search.

    The defaults below are the code's; a model folder's config.json `decoding` section overrides them for that
    model (ModelBundle.decoding), and a request or a command line changes that (`changed`).
    """

    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0  # GNMT alpha; 0 ranks by raw log-probability
    max_len_a: float = 1.5  # max target length = a * src_len + b
    max_len_b: int = 10
    min_length: int = 0
    max_repeats: int = 4  # repetition guard: no n-gram (n <= 4) more than this many times in a row; 0 = off
    # Rerank the beam by adding this weight times the reverse model's log p(source | hypothesis) per source token
    # (model/rerank.py); 0 = off. Needs beam search and a reverse model (Translator.use_reverse).
    reverse_weight: float = 0.0
    # ... and this weight times the right-to-left model's log p(hypothesis | source) per target token; 0 = off.
    # Needs beam search and a right-to-left model of the same direction (Translator.use_right_to_left).
    right_to_left_weight: float = 0.0
    # Search only the target pieces of the model's lexical shortlist for the batch (model/shortlist.py): faster,
    # scores renormalized over the shortlist. Needs a model folder with shortlist.safetensors.
    shortlist: bool = False
    return_attention: bool = False
    # True: a sentence is done once it has beam_size finished hypotheses (fairseq's rule). False: only
    # when no alive beam could still beat the worst finished one, even at the maximum length: exact for
    # the objective, a few percent slower, and no better in BLEU (en-de val, beam 5: 37.06 vs 37.19).
    stop_early: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise InputError(f"beam size must be a positive integer, got {self.beam_size!r}")
        if not isinstance(self.n_best, int) or not 1 <= self.n_best <= self.beam_size:
            raise InputError(f"n-best must be between 1 and the beam size ({self.beam_size}), got {self.n_best!r}")
        if self.length_penalty < 0 or self.max_len_a < 0 or self.max_len_b < 1 or self.min_length < 0:
            raise InputError("length penalty, max_len_a and min_length must be >= 0 and max_len_b >= 1")
        for name in ("reverse_weight", "right_to_left_weight"):
            if not 0 <= getattr(self, name) <= 10:
                raise InputError(f"{name.replace('_', ' ')} must be between 0 and 10, got {getattr(self, name)!r}")
        if not isinstance(self.max_repeats, int) or self.max_repeats < 0:
            raise InputError(f"max_repeats must be a non-negative integer, got {self.max_repeats!r}")

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> SearchConfig:
        """The decoding settings of a model folder's config.json `decoding` section (model/checkpoint.py reads
        it); the fields it leaves out keep the defaults above, keys that are not settings are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in section.items() if key in known})

    def changed(self, **changes: Any) -> SearchConfig:
        """These settings with some changed; None values leave a setting as it is (an option not given)."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    log_prob: float  # sum of token log-probabilities, EOS included
    score: float  # log_prob / length penalty (the ranking score)
    attention: torch.Tensor | None = None  # (len(tokens) + 1, src_len), the EOS step included


def length_penalty(length: torch.Tensor | int, alpha: float) -> torch.Tensor | float:
    """GNMT length penalty ((5 + length) / 6) ** alpha, Wu et al. 2016, arXiv:1609.08144."""
    return ((5.0 + length) / 6.0) ** alpha


def max_lengths(src_lengths: torch.Tensor, config: SearchConfig) -> torch.Tensor:
    """(batch,) maximum target length, EOS included."""
    return (src_lengths.float() * config.max_len_a + config.max_len_b).long()


def _hypothesis(tokens: torch.Tensor, log_prob: float, alpha: float, attention: torch.Tensor | None,
                src_len: int, vocab: TargetVocabulary | None) -> Hypothesis:
    """tokens: (length,) EOS included, rows of `vocab` when search had one."""
    ids = (tokens if vocab is None else vocab.ids[tokens]).tolist()
    length = len(ids)  # EOS included
    att = None if attention is None else attention[:length, :src_len].float().cpu()
    return Hypothesis(ids[:-1], log_prob, log_prob / length_penalty(length, alpha), att)


def _normalize_and_constrain(logits: torch.Tensor, view: StepView,
                             chosen: list[LogitProcessor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-normalizer of the model's distribution, then the logit processors applied to `logits` in place.

    logits: (vocab, rows). Returns the chunk maxima of the processed logits and the log-normalizer (rows,).
    """
    chunk_max = chunk_maxima(logits)
    log_norm = log_normalizer(logits, chunk_max)
    if apply_processors(logits, view, chosen):
        chunk_max = chunk_maxima(logits)  # the selections must see the constraints
    return chunk_max, log_norm


def _greedy_choice(logits: torch.Tensor, view: StepView, chosen: list[LogitProcessor], columns: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (vocab, rows), columns = arange(rows) -> each row's best token after the logit processors and the
    model's log-probability of it, (rows,) each. One row (the service's latency path) takes two reductions over
    its column as a flat vector, where the chunk maxima serve many rows: log_softmax's fused kernel and a flat
    argmax take 20 + 16 us on 10,000 pieces against logsumexp's six ops and argmax over dim 0 of (vocab, 1),
    42 + 29 us (AVX2, 2 threads)."""
    if logits.size(1) > 1:
        chunk_max, log_norm = _normalize_and_constrain(logits, view, chosen)
        best = argmax_over_vocab(logits, chunk_max)
        return best, logits[best, columns] - log_norm
    column = logits.view(-1)  # (vocab,): one row is contiguous in either layout
    log_probs = torch.log_softmax(column, 0)  # before the processors: the model's own distribution
    apply_processors(logits, view, chosen)
    best = column.argmax().view(1)
    return best, log_probs[best]


@torch.inference_mode()
def greedy_search(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                  config: SearchConfig = SearchConfig(beam_size=1),
                  max_rows: int | None = None, vocab: TargetVocabulary | None = None) -> list[list[Hypothesis]]:
    """src: (batch, src_len) -> one best hypothesis per sentence (as a one-element list).

    Continuous batching: at most `max_rows` sentences (default: all) decode together. The row of a
    sentence that finishes goes, in place, to the next sentence in the given order; only when none is
    left do rows leave the batch. So pass many sentences at once, longest first: the last rows to drain
    are then the shortest sentences (the drain took 11% of the time for 512 sentences shortest first,
    at a fraction of the batch), and the batch's source padding shrinks as the long sources finish.
    """
    batch, device = src.size(0), src.device
    if batch == 0:
        return []
    max_rows = min(max_rows or batch, batch)
    limit = max_lengths(src_lengths, config).to(device)  # (batch,)
    width = int(limit.max())
    tokens = torch.full((batch, width), PAD_ID, dtype=torch.long, device=device)
    log_probs_sum = torch.zeros(batch, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    with_attention = config.return_attention and model.decoder.attention is not None
    attention = torch.zeros(batch, width, src.size(1), device=device) if with_attention else None
    chosen = processors(config.min_length, config.max_repeats)
    queue = EncodedQueue(model, src, src_lengths, max_rows)
    encoded, state, active = queue.take(max_rows)  # active: (rows,) the sentence each row decodes
    encoded = fit_to_sources(encoded, src_lengths[active].tolist())
    # What each row's sentence has so far, row by row (no gather from the batch's buffers a step; a sentence's row
    # is copied to them once, when it finishes): its tokens, log-probability, position and length limit.
    history = torch.full((active.size(0), width), PAD_ID, dtype=torch.long, device=device)  # (rows, width)
    row_log_prob = torch.zeros(active.size(0), device=device)  # (rows,)
    position = torch.zeros_like(active)  # (rows,) target position of each row
    row_limit = limit[active]  # (rows,)
    prev = torch.full_like(active, BOS_ID)  # (rows,) previous token of each row
    columns = torch.arange(active.size(0), device=device)  # (rows,)
    window = window_of(chosen)
    start = before_start(window, device)  # (window,)
    recent = start.expand(active.size(0), -1).clone()  # (rows, window) StepView.recent, kept as tokens come
    longest, steps_left = 0, int(row_limit.min())  # StepView's bounds, kept on the host
    while True:
        logits, state, weights = model.decode_step(prev, state, encoded, vocab)  # (vocab, rows)
        view = StepView(recent, position, row_limit, longest, steps_left)
        best, step_log_prob = _greedy_choice(logits, view, chosen, columns)  # (rows,) each
        row_log_prob += step_log_prob
        history[columns, position] = best
        if window:
            recent = torch.cat([recent[:, 1:], best.unsqueeze(1)], dim=1)
        if attention is not None:
            attention[active, position, : weights.size(1)] = weights
        position += 1
        longest, steps_left, prev = longest + 1, steps_left - 1, best
        finished = best == EOS_ID
        if not finished.any():
            continue
        done = active[finished]
        lengths[done], log_probs_sum[done], tokens[done] = position[finished], row_log_prob[finished], history[finished]
        free = finished.nonzero().squeeze(1)
        refill = free[: queue.remaining]
        if refill.size(0):  # the next sentences take the free rows
            new_encoded, new_state, new = queue.take(refill.size(0))
            encoded, state = encoded.put(refill, new_encoded), state.put(refill, new_state)
            active[refill], position[refill], prev[refill], row_limit[refill] = new, 0, BOS_ID, limit[new]
            history[refill], row_log_prob[refill], recent[refill] = PAD_ID, 0.0, start
            finished[refill] = False  # these rows decode new sentences now
        if refill.size(0) < free.size(0):  # no sentence left to start: the other finished rows leave
            keep = (~finished).nonzero().squeeze(1)
            if keep.size(0) == 0:
                break
            active, prev, position, row_limit = active[keep], prev[keep], position[keep], row_limit[keep]
            history, row_log_prob, recent = history[keep], row_log_prob[keep], recent[keep]
            columns = columns[: keep.size(0)]
            state, encoded = state.index_select(keep), encoded.index_select(keep)
        encoded = fit_to_sources(encoded, src_lengths[active].tolist())
        longest, steps_left = int(position.max()), int((row_limit - position).min())
    src_lens = src_lengths.tolist()
    return [
        [_hypothesis(tokens[i, : lengths[i]], float(log_probs_sum[i]), config.length_penalty,
                     None if attention is None else attention[i], src_lens[i], vocab)]
        for i in range(batch)
    ]


@torch.inference_mode()
def beam_search(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                config: SearchConfig, vocab: TargetVocabulary | None = None) -> list[list[Hypothesis]]:
    """src: (batch, src_len) -> for each sentence its n_best hypotheses, best first.

    EOS candidates among the top `beam_size` of a step are finished (as in fairseq), so beam size 1 is
    exactly greedy search. When a sentence stops: see SearchConfig.stop_early.
    """
    k, alpha, device = config.beam_size, config.length_penalty, src.device
    batch, src_len = src.shape
    limit = max_lengths(src_lengths, config).to(device)  # (batch,) EOS included
    width = int(limit.max())
    encoded = SharedSources.of(model.encode(src, src_lengths), k)  # each source once, for its k rows
    state = model.init_state(encoded)  # (layers, batch * k, hidden)
    with_attention = config.return_attention and model.decoder.attention is not None

    active = torch.arange(batch, device=device)  # original sentence of each alive row group
    alive_scores = torch.full((batch, k), float("-inf"), device=device)
    alive_scores[:, 0] = 0.0  # all beams start identical: keep one
    alive_tokens = torch.full((batch, k, 0), PAD_ID, dtype=torch.long, device=device)
    alive_att = torch.zeros(batch, k, 0, src_len, device=device) if with_attention else None
    fin_scores = torch.full((batch, k), float("-inf"), device=device)  # length-normalized
    fin_raw = torch.zeros(batch, k, device=device)
    fin_tokens = torch.full((batch, k, width), PAD_ID, dtype=torch.long, device=device)
    fin_att = torch.zeros(batch, k, width, src_len, device=device) if with_attention else None
    results: list[list[Hypothesis] | None] = [None] * batch
    prev = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)
    chosen = processors(config.min_length, config.max_repeats)
    window = window_of(chosen)
    row_limits, min_limit = limit.repeat_interleave(k), int(limit.min())  # (rows * k,) of the alive sentences

    for t in range(width):
        rows = active.size(0)
        logits, state, weights = model.decode_step(prev, state, encoded, vocab)  # (vocab, rows * k)
        view = StepView(recent_tokens(alive_tokens.view(rows * k, t), window),
                        torch.full((rows * k,), t, device=device), row_limits, t, min_limit - t)
        chunk_max, log_norm = _normalize_and_constrain(logits, view, chosen)
        # The scoring rule: the top 2k continuations (score + log-prob) of every sentence's beams.
        top_scores, top_beam, top_token = top_candidates(logits, chunk_max, alive_scores.view(-1) - log_norm, k,
                                                         2 * k)

        # Candidate histories: the source beam's tokens (and attention) plus the new token.
        cand_tokens = torch.cat([alive_tokens.gather(1, top_beam.unsqueeze(2).expand(-1, -1, t)),
                                 top_token.unsqueeze(2)], dim=2)  # (rows, 2k, t + 1)
        cand_att = None
        if with_attention:
            step_att = weights.view(rows, k, 1, src_len)
            history = torch.cat([alive_att, step_att], dim=2)  # (rows, k, t + 1, src_len)
            cand_att = history.gather(1, top_beam.view(rows, -1, 1, 1).expand(-1, -1, t + 1, src_len))

        # Finish EOS candidates that rank within the top k; merge them into the finished set.
        is_eos = top_token == EOS_ID
        is_eos[:, k:] = False
        new_fin = (top_scores / length_penalty(t + 1, alpha)).masked_fill(~is_eos, float("-inf"))
        merged = torch.cat([fin_scores, new_fin], dim=1)  # (rows, k + 2k)
        fin_scores, pick = merged.topk(k, dim=1)
        fin_raw = torch.cat([fin_raw, top_scores], dim=1).gather(1, pick)
        padded = torch.full((rows, cand_tokens.size(1), width), PAD_ID, dtype=torch.long, device=device)
        padded[:, :, : t + 1] = cand_tokens
        fin_tokens = torch.cat([fin_tokens, padded], dim=1).gather(1, pick.unsqueeze(2).expand(-1, -1, width))
        if with_attention:
            padded_att = torch.zeros(rows, cand_att.size(1), width, src_len, device=device)
            padded_att[:, :, : t + 1] = cand_att
            fin_att = torch.cat([fin_att, padded_att], dim=1).gather(
                1, pick.view(rows, k, 1, 1).expand(-1, -1, width, src_len))

        # Continue with the best k candidates that did not end in EOS.
        alive_candidates = top_scores.masked_fill(top_token == EOS_ID, float("-inf"))
        alive_scores, keep = alive_candidates.topk(k, dim=1)  # (rows, k)
        alive_tokens = cand_tokens.gather(1, keep.unsqueeze(2).expand(-1, -1, t + 1))
        if with_attention:
            alive_att = cand_att.gather(1, keep.view(rows, k, 1, 1).expand(-1, -1, t + 1, src_len))
        source_beam = top_beam.gather(1, keep)  # (rows, k)
        prev = top_token.gather(1, keep).view(-1)

        # A sentence is done with k finished hypotheses (stop_early), or when no alive beam can beat its
        # worst finished one; or at its length limit.
        best_alive = alive_scores.max(dim=1).values
        done = fin_scores[:, -1] > float("-inf")
        if not config.stop_early:
            done &= best_alive / (length_penalty(limit[active], alpha) if alpha > 0 else 1.0) <= fin_scores[:, -1]
        done |= (t + 1 >= limit[active]) | (best_alive == float("-inf"))
        for row in done.nonzero().squeeze(1).tolist():
            sentence = int(active[row])
            results[sentence] = [
                _hypothesis(fin_tokens[row, j, : _length(fin_tokens[row, j])], float(fin_raw[row, j]), alpha,
                            None if fin_att is None else fin_att[row, j], int(src_lengths[sentence]), vocab)
                for j in range(config.n_best) if fin_scores[row, j] > float("-inf")
            ]
        if bool(done.all()):
            break
        # Reorder decoder state by source beam and drop the rows of finished sentences.
        keep_rows = (~done).nonzero().squeeze(1)
        flat = (keep_rows.unsqueeze(1) * k + source_beam[keep_rows]).view(-1)  # (alive_rows * k,)
        state, prev = state.index_select(flat), prev.view(rows, k)[keep_rows].view(-1)
        if keep_rows.size(0) < rows:
            encoded = encoded.select_sentences(keep_rows)
            active, alive_scores, alive_tokens = active[keep_rows], alive_scores[keep_rows], alive_tokens[keep_rows]
            fin_scores, fin_raw, fin_tokens = fin_scores[keep_rows], fin_raw[keep_rows], fin_tokens[keep_rows]
            row_limits, min_limit = limit[active].repeat_interleave(k), int(limit[active].min())
            if with_attention:
                alive_att, fin_att = alive_att[keep_rows], fin_att[keep_rows]
    return [r if r is not None else [] for r in results]


def _length(tokens: torch.Tensor) -> int:
    """Length of a finished hypothesis up to and including its EOS."""
    return int((tokens == EOS_ID).nonzero()[0, 0]) + 1


def search(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
           config: SearchConfig, max_rows: int | None = None,
           vocab: TargetVocabulary | None = None) -> list[list[Hypothesis]]:
    """Greedy when beam_size is 1 (the fast path, continuously batched to `max_rows`), beam search otherwise;
    over a shortlist's vocabulary for these sources when given one (model/shortlist.py)."""
    if config.beam_size == 1:
        return greedy_search(model, src, src_lengths, config, max_rows, vocab)
    return beam_search(model, src, src_lengths, config, vocab)
