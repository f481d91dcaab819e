"""Logit processors: the rules search applies to a step's logits before it picks tokens, in one place.

Greedy and beam search build one list (`processors(config)`) and call `apply(...)` once a step. Each processor
masks, in place, the tokens a row may not take next: the length limits and the repetition guard today; forbidden
tokens and glossary constraints go here too. The model's own log-normalizer is computed before they run, so scores
stay the model's log-probabilities of the allowed tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from model.config import EOS_ID


@dataclass
class StepView:
    """What the processors see of one step.

    recent:  (rows, window) the last `window` tokens of each row, oldest first (`recent_tokens`): a row with fewer
             has `before_start(window)` values before its first token, which equal no token and no other position
    lengths: (rows,) tokens generated so far, which is also the position of the token being chosen
    limits:  (rows,) maximum target length, EOS included
    longest: at least the largest of `lengths`; steps_left: at most the smallest of `limits - lengths`. Kept by
             search as plain ints, so that a processor with nothing to do this step returns without an op (every op
             costs ~5 us on the one-sentence path, and each step runs the processors).
    """

    recent: torch.Tensor
    lengths: torch.Tensor
    limits: torch.Tensor
    longest: int
    steps_left: int


def before_start(window: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(window,) the values `recent` holds before a row's first token: -window .. -1, distinct and below every token."""
    return torch.arange(-window, 0, device=device)


def recent_tokens(history: torch.Tensor, window: int) -> torch.Tensor:
    """history (rows, t) tokens every row has, all of the same length t -> their `StepView.recent` (rows, window)."""
    rows, t = history.shape
    if t >= window:
        return history[:, t - window:]
    return torch.cat([before_start(window - t, history.device).expand(rows, -1), history], dim=1)


class LogitProcessor(Protocol):
    window: int  # how many of each row's last tokens it reads (StepView.recent)

    def __call__(self, logits: torch.Tensor, view: StepView) -> bool:
        """Mask disallowed tokens of logits (vocab, rows) in place; True if anything was masked."""
        ...


@dataclass(frozen=True)
class LengthLimits:
    """At the length limit only EOS is allowed; before min_length, EOS is not."""

    min_length: int = 0

    window = 0  # no tokens of the history

    def __call__(self, logits: torch.Tensor, view: StepView) -> bool:
        if view.steps_left > 1 and self.min_length == 0:  # no row at its limit, no minimum
            return False
        forced = view.lengths + 1 >= view.limits  # (rows,)
        if self.min_length > 0:
            too_short = view.lengths < self.min_length  # (rows,)
            if not bool(forced.any() | too_short.any()):
                return False
            logits[EOS_ID].masked_fill_(too_short, float("-inf"))
        elif not bool(forced.any()):
            return False
        eos_logit = logits[EOS_ID].clone()
        logits[:, forced] = float("-inf")
        logits[EOS_ID] = torch.where(forced, eos_logit, logits[EOS_ID])
        return True


@dataclass(frozen=True)
class RepetitionGuard:
    """No n-gram (n <= max_ngram) may follow itself more than max_repeats times in a row: the token that would
    start one more copy is masked. Short or odd inputs then cannot make a sentence loop until its length limit.

    All n at once, in a fixed number of ops a step (the guard runs every step of the service's latency path), and
    most steps stop after the first check:
    the last R*N tokens of each row (R = max_repeats, N = max_ngram; `StepView.recent`), compared with themselves n
    back for every n through one unfolded view. Period n holds when the last (R-1)*n tokens each equal the one n
    before them: R copies in the row's last R*n tokens. tests/model/test_logits.py holds it to the plain loop over n
    and positions.
    """

    max_repeats: int = 4
    max_ngram: int = 4

    @property
    def window(self) -> int:
        """How many of each row's last tokens it reads (`StepView.recent`)."""
        return self.max_repeats * self.max_ngram

    def __call__(self, logits: torch.Tensor, view: StepView) -> bool:
        repeats, ngram, width = self.max_repeats, self.max_ngram, self.window
        if view.longest < repeats:  # not even R unigrams yet
            return False
        tail = view.recent[:, -width:]  # (rows, width)
        # Every period n needs the last token to equal the one n before it; usually none does: done in 3 ops.
        if not bool((tail[:, -1:] == tail[:, -1 - ngram: -1]).any()):
            return False
        windows = tail.unfold(1, width - ngram, 1)  # (rows, N + 1, width - N): [:, o] = tail[:, o: o + width - N]
        same = windows[:, ngram:] == windows[:, :ngram].flip(1)  # (rows, N, width - N): tail[N+k] == tail[N+k-n]
        n = torch.arange(1, ngram + 1, device=tail.device).unsqueeze(1)  # (N, 1)
        needed = torch.arange(ngram, width, device=tail.device) >= width - (repeats - 1) * n  # (N, width - N)
        periodic = (same | ~needed).all(dim=2) & (view.lengths.unsqueeze(1) >= repeats * n.t())  # (rows, N)
        hits = periodic.nonzero()  # (hits, 2): row, n - 1
        if hits.size(0) == 0:
            return False
        starts = tail[:, width - ngram:].flip(1)  # (rows, N): tail[width - n], the first token of the last copy
        logits[starts[hits[:, 0], hits[:, 1]], hits[:, 0]] = float("-inf")
        return True


def processors(min_length: int, max_repeats: int) -> list[LogitProcessor]:
    """The processors of a search: length limits always; the repetition guard unless max_repeats is 0."""
    chosen: list[LogitProcessor] = [LengthLimits(min_length)]
    if max_repeats > 0:
        chosen.append(RepetitionGuard(max_repeats))
    return chosen


def window_of(chosen: list[LogitProcessor]) -> int:
    """How many last tokens of each row search keeps for the processors (StepView.recent)."""
    return max((processor.window for processor in chosen), default=0)


def apply(logits: torch.Tensor, view: StepView, chosen: list[LogitProcessor]) -> bool:
    """Run every processor on logits (vocab, rows) in place; True if any masked a token."""
    changed = False
    for processor in chosen:
        changed |= processor(logits, view)
    return changed
