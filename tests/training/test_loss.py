"""The fused label-smoothed loss equals torch's cross_entropy, value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.loss import smoothed_cross_entropy


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_matches_torch_cross_entropy(smoothing: float) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(12, 37, generator=generator) * 4).requires_grad_()
    target = torch.randint(0, 37, (12,), generator=generator)
    target[[2, 7]] = 0  # ignored positions (the padding id)
    loss, nll = smoothed_cross_entropy(logits, target, smoothing, 0)
    loss.backward(torch.tensor(0.5))

    reference = logits.detach().clone().requires_grad_()
    expected = F.cross_entropy(reference, target, ignore_index=0, label_smoothing=smoothing, reduction="sum")
    (expected * 0.5).backward()
    expected_nll = F.cross_entropy(reference.detach(), target, ignore_index=0, reduction="sum")
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(nll, expected_nll)
    torch.testing.assert_close(logits.grad, reference.grad)
    assert logits.grad[[2, 7]].abs().max() == 0


def test_backward_twice_is_refused() -> None:
    logits = torch.randn(3, 5, requires_grad=True)
    loss, _ = smoothed_cross_entropy(logits, torch.tensor([1, 2, 3]), 0.1, 0)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()
