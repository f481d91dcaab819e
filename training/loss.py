"""Label-smoothed cross-entropy (Szegedy et al. 2016) as one fused autograd function.

The vocabulary-sized softmax is the largest elementwise work in training. torch's
`cross_entropy(label_smoothing=...)` materializes log-probabilities and runs a generic backward;
here the backward is the closed form  softmax(x) - q  (q = the smoothed target), one pass.
"""

from __future__ import annotations

import torch


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, smoothing: float, ignore_index: int):
        # logits: (N, vocab) float; target: (N,)
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # (N, 1)
        keep = (target != ignore_index).to(logits.dtype)  # (N,)
        safe_target = target.clamp(min=0)
        nll = lse.squeeze(1) - logits.gather(1, safe_target[:, None]).squeeze(1)  # (N,)
        smooth = lse.squeeze(1) - logits.mean(dim=-1)  # (N,) cross-entropy with the uniform distribution
        ctx.save_for_backward(logits, safe_target, lse, keep)
        ctx.smoothing = smoothing
        loss = ((1.0 - smoothing) * nll + smoothing * smooth) * keep
        return loss.sum(), (nll * keep).sum()

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_nll: torch.Tensor):
        logits, target, lse, keep = ctx.saved_tensors
        eps = ctx.smoothing
        grad = torch.exp(logits - lse)  # softmax, (N, vocab)
        grad.sub_(eps / logits.size(1))
        grad.scatter_add_(1, target[:, None], torch.full_like(lse, -(1.0 - eps)))
        grad.mul_((keep * grad_loss)[:, None])
        return grad, None, None, None


def smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed loss (for gradients) and summed plain NLL (for perplexity), both scalars.

    logits: (N, vocab); target: (N,). Positions equal to ignore_index count for neither.
    Only the first result carries a gradient.
    """
    return _SmoothedCrossEntropy.apply(logits.float(), target, smoothing, ignore_index)
