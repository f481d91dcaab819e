"""Bahdanau (additive, MLP) attention, Section A.1.2 of Bahdanau et al. 2015, arXiv:1409.0473.

score(s_{t-1}, h_j) = v^T tanh(W s_{t-1} + U h_j)

U h_j does not depend on the decoder step, so `project_keys` computes it once per source batch and
the decoder passes it back in at every step; nothing per-request is stored on the module, so one
model can serve many threads at once.
"""

from __future__ import annotations

import torch
from torch import nn


class BahdanauAttention(nn.Module):
    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, attention_size, bias=False)  # U
        self.query_layer = nn.Linear(query_size, attention_size, bias=True)  # W (+ bias)
        self.energy_layer = nn.Linear(attention_size, 1, bias=False)  # v

    def project_keys(self, encoder_outputs: torch.Tensor) -> torch.Tensor:
        """encoder_outputs: (batch, src_len, enc_out) -> keys U h_j: (batch, src_len, attention_size)."""
        return self.key_layer(encoder_outputs)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of attention.

        query:  (batch, query_size) the previous decoder state s_{t-1}
        keys:   (batch, src_len, attention_size) from `project_keys`
        values: (batch, src_len, enc_out) the encoder outputs h_j
        mask:   (batch, src_len) True at real source tokens
        Returns context (batch, enc_out) and weights (batch, src_len).
        """
        projected_query = self.query_layer(query).unsqueeze(1)  # (batch, 1, attention_size)
        scores = self.energy_layer(torch.tanh(projected_query + keys)).squeeze(2)  # (batch, src_len)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (batch, src_len)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (batch, enc_out)
        return context, weights
