"""One GRU step forward and backward, written out for the hand-written recurrence of training.

The gate layout is torch's (nn.GRU, nn.GRUCell): rows [reset r | update u | new n] of W_ih and W_hh,
    r = sigmoid(gi_r + gh_r),  u = sigmoid(gi_u + gh_u),  n = tanh(gi_n + r * gh_n)
    s' = (1 - u) n + u s = n + u (s - n)
with gi = W_ih x + b_ih and gh = W_hh s + b_hh. Used by model/kernels/fused_recurrence.py, which
keeps (r, u, n) and gh_n per step for the backward pass.
"""

from __future__ import annotations

import torch


def gru_step(input_gates: torch.Tensor, hidden_gates: torch.Tensor, state: torch.Tensor, gates: torch.Tensor,
             hidden_n: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """input_gates: (..., 3H) gi; hidden_gates: (..., 3H) gh; state: (..., H) s.

    Writes (r, u, n) into gates (which may be input_gates itself), gh_n into hidden_n and s' into out;
    returns out.
    """
    hidden = state.size(-1)
    ru = torch.add(input_gates[..., : 2 * hidden], hidden_gates[..., : 2 * hidden], out=gates[..., : 2 * hidden])
    ru.sigmoid_()
    hidden_n.copy_(hidden_gates[..., 2 * hidden:])
    n = torch.addcmul(input_gates[..., 2 * hidden:], ru[..., :hidden], hidden_n, out=gates[..., 2 * hidden:])
    n.tanh_()
    return torch.addcmul(n, ru[..., hidden:], state - n, out=out)


def gru_step_backward(
    d_new: torch.Tensor, gates: torch.Tensor, state: torch.Tensor, hidden_n: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients through one step, given d_new = dL/ds' (..., H) and what `gru_step` kept.

    Returns dL/dgi (..., 3H), dL/dgh (..., 3H), and the direct part of dL/ds, d_new * u; the caller
    adds dL/dgh @ W_hh (deferring W_hh's own gradient to one product over all steps).
    """
    hidden = state.size(-1)
    r, u, n = gates.contiguous().split(hidden, dim=-1)  # (..., H) each
    d_n = d_new * (1.0 - u) * (1.0 - n * n)  # through tanh
    d_u = d_new * (state - n) * (u - u * u)  # through sigmoid
    d_r = d_n * hidden_n * (r - r * r)
    return torch.cat([d_r, d_u, d_n], dim=-1), torch.cat([d_r, d_u, d_n * r], dim=-1), d_new * u
