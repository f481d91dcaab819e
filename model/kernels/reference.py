"""The reference network itself as a kernel: `ConditionalDecoder.step` and its readout, and the
step-by-step recurrence under autograd. It covers every configuration, device and dtype (and runs under
autocast), so a model always has a kernel; it is what every other kernel is tested against."""

from __future__ import annotations

import torch

from model.decoder import ConditionalDecoder, DecoderState
from model.encoder import EncoderOutput
from model.kernels.base import RecurrenceKernel, StepFn, StepKernel, Support
from model.shortlist import TargetVocabulary


def bind_reference_step(decoder: ConditionalDecoder) -> StepFn:
    def step(prev_embedded: torch.Tensor, state: DecoderState, encoded: EncoderOutput,
             vocab: TargetVocabulary | None = None) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        top, context, state, weights = decoder.step(prev_embedded, state, encoded)
        logits = decoder.logits(top, context, prev_embedded, vocab)  # (rows, vocab)
        return logits.t().contiguous(), state, weights

    return step


REFERENCE_STEP = StepKernel("reference", Support(autocast=True), bind_reference_step)
REFERENCE_RECURRENCE = RecurrenceKernel("reference", Support(autocast=True), ConditionalDecoder.stepwise_recurrence)
