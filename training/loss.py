"""Label-smoothed cross-entropy (Szegedy et al. 2016) as one fused autograd function.

The vocabulary-sized softmax is the largest elementwise work in training. torch's
`cross_entropy(label_smoothing=...)` materializes log-probabilities and runs a generic backward.
Here the forward pass computes the softmax once and turns it, in place, into the gradient's closed
form  softmax(x) - q  (q = the smoothed target); backward only scales it. One exp over
(tokens, vocab) instead of two, and one (tokens, vocab) buffer instead of three.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, smoothing: float, ignore_index: int):
        # logits: (N, vocab) float; target: (N,)
        vocab = logits.size(1)
        keep = (target != ignore_index).to(logits.dtype).unsqueeze(1)  # (N, 1)
        safe_target = target.clamp(min=0).unsqueeze(1)  # (N, 1)
        peak = logits.amax(dim=1, keepdim=True)  # (N, 1)
        grad = torch.sub(logits, peak).exp_()  # (N, vocab) unnormalized softmax
        total = grad.sum(dim=1, keepdim=True)  # (N, 1)
        lse = total.log() + peak  # (N, 1)
        nll = lse - logits.gather(1, safe_target)  # (N, 1)
        smooth = lse - logits.mean(dim=1, keepdim=True)  # (N, 1) cross-entropy with the uniform distribution
        loss = ((1.0 - smoothing) * nll + smoothing * smooth) * keep
        # grad = keep * (softmax - q), q = (1 - eps) one_hot(target) + eps / vocab
        grad.mul_(keep / total).sub_(keep * (smoothing / vocab))
        grad.scatter_add_(1, safe_target, keep * -(1.0 - smoothing))
        ctx.save_for_backward(grad)
        return loss.sum(), (nll * keep).sum()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor, _grad_nll: torch.Tensor):
        if getattr(ctx, "used", False):
            raise RuntimeError("smoothed_cross_entropy scales its saved gradient in place: backward only once")
        ctx.used = True
        (grad,) = ctx.saved_tensors
        return grad.mul_(grad_loss), None, None, None


def smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed loss (for gradients) and summed plain NLL (for perplexity), both scalars.

    logits: (N, vocab); target: (N,). Positions equal to ignore_index count for neither.
    Only the first result carries a gradient.
    """
    return _SmoothedCrossEntropy.apply(logits.float(), target, smoothing, ignore_index)
