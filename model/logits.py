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

    history: (rows, width) tokens generated so far by each row (left-aligned; PAD after `lengths`)
    lengths: (rows,) tokens generated so far, which is also the position of the token being chosen
    limits:  (rows,) maximum target length, EOS included
    """

    history: torch.Tensor
    lengths: torch.Tensor
    limits: torch.Tensor


class LogitProcessor(Protocol):
    def __call__(self, logits: torch.Tensor, view: StepView) -> bool:
        """Mask disallowed tokens of logits (vocab, rows) in place; True if anything was masked."""
        ...


@dataclass(frozen=True)
class LengthLimits:
    """At the length limit only EOS is allowed; before min_length, EOS is not."""

    min_length: int = 0

    def __call__(self, logits: torch.Tensor, view: StepView) -> bool:
        forced = view.lengths + 1 >= view.limits  # (rows,)
        too_short = view.lengths < self.min_length  # (rows,)
        if not bool(forced.any() | too_short.any()):
            return False
        logits[EOS_ID].masked_fill_(too_short, float("-inf"))
        eos_logit = logits[EOS_ID].clone()
        logits[:, forced] = float("-inf")
        logits[EOS_ID] = torch.where(forced, eos_logit, logits[EOS_ID])
        return True


@dataclass(frozen=True)
class RepetitionGuard:
    """No n-gram (n <= max_ngram) may follow itself more than max_repeats times in a row: the token that would
    start one more copy is masked. Short or odd inputs then cannot make a sentence loop until its length limit."""

    max_repeats: int = 4
    max_ngram: int = 4

    def __call__(self, logits: torch.Tensor, view: StepView) -> bool:
        history, lengths = view.history, view.lengths
        rows = torch.arange(history.size(0), device=history.device)
        masked = False
        for n in range(1, self.max_ngram + 1):
            window = self.max_repeats * n  # the copies already there; the next token would start one more
            if window > history.size(1) or not bool((lengths >= window).any()):
                continue
            offsets = torch.arange(window, device=history.device)  # (window,)
            start = (lengths - window).clamp(min=0).unsqueeze(1)  # (rows, 1)
            tail = history.gather(1, start + offsets)  # (rows, window): the last `window` tokens
            periodic = (tail[:, n:] == tail[:, :-n]).all(dim=1) & (lengths >= window)  # (rows,)
            if bool(periodic.any()):
                banned = tail[:, window - n]  # the first token of the last copy starts the next one
                logits[banned[periodic], rows[periodic]] = float("-inf")
                masked = True
        return masked


def processors(min_length: int, max_repeats: int) -> list[LogitProcessor]:
    """The processors of a search: length limits always; the repetition guard unless max_repeats is 0."""
    chosen: list[LogitProcessor] = [LengthLimits(min_length)]
    if max_repeats > 0:
        chosen.append(RepetitionGuard(max_repeats))
    return chosen


def apply(logits: torch.Tensor, view: StepView, chosen: list[LogitProcessor]) -> bool:
    """Run every processor on logits (vocab, rows) in place; True if any masked a token."""
    changed = False
    for processor in chosen:
        changed |= processor(logits, view)
    return changed
