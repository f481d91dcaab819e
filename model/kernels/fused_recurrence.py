"""The teacher-forced GRU + Bahdanau recurrence, with a hand-written backward through time.

Training spends most of its non-matmul time in the decoder's recurrence: per target step a few
dozen small ops, each recorded by autograd, and in backward a weight gradient per step that is
accumulated into the full weight (three (3*hidden, in) tensors read and written every step).
This kernel computes the same thing as `ConditionalDecoder.stepwise_recurrence` (one GRU layer
with Bahdanau attention) but:
- records nothing per step: backward is one loop written out (as cuDNN does for its RNNs);
- defers every weight gradient to one matrix product over all steps, (3H, T*B) @ (T*B, in),
  instead of T products with an inner dimension of one batch plus T accumulations;
- takes the embedding's share of the GRU input gates precomputed for all steps by the caller
  (one (T*B, emb) @ (emb, 3H) product, and its gradient flows back through ordinary autograd);
- accumulates the attention keys' gradient in place and the values' gradient as one batched
  product at the end, dV = A^T dC.
The query and hidden-gate products share s_{t-1}, so they are one product ([W_q; W_hh] s), forward
and backward. tests/model/test_kernels.py checks outputs and every gradient against the reference
in float64. Not under autocast: its products write into fp32 buffers (`out=`).

Shapes: T target steps, B batch, S source length, A attention size, E encoder output, H hidden.
The attention is the sigmoid form of model/attention.py: scores = 2 v^T sigmoid(q2 + K2) with
q2 = 2 (W_q s + b_q) and K2 = 2 U h, then masked softmax.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from model.decoder import ConditionalDecoder, DecoderState
from model.encoder import EncoderOutput
from model.kernels.base import RecurrenceKernel, Support
from model.kernels.gru import gru_step, gru_step_backward


class _GRUAttentionRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, emb_gates, h0, keys, values, mask, w_query, b_query, v, w_ctx, w_hh, b_hh):
        # emb_gates: (T, B, 3H) = W_ih[:, :emb] e_t + b_ih;  h0: (B, H);  keys: (B, S, A) = 2 U h_j
        # values: (B, S, E);  mask: (B, S) bool;  w_query: (A, H);  v: (1, A);  w_ctx: (3H, E);  w_hh: (3H, H)
        steps, batch, three_h = emb_gates.shape
        hidden = three_h // 3
        src_len, att = keys.shape[1], keys.shape[2]
        padding = ~mask
        # s_{t-1} feeds both the attention query and the hidden gates: one product for both.
        w_state = torch.cat([w_query, w_hh])  # (A + 3H, H)
        b_state = torch.cat([b_query, b_hh])  # (A + 3H,)
        tops = h0.new_empty(steps, batch, hidden)  # s_t
        contexts = h0.new_empty(steps, batch, values.size(2))  # c_t
        alphas = h0.new_empty(steps, batch, src_len)  # attention weights
        gates = h0.new_empty(steps, batch, three_h)  # r, u, n after their nonlinearities
        hidden_n = h0.new_empty(steps, batch, hidden)  # W_hn s_{t-1} + b_hn, the term r multiplies
        # sigmoid(q2 + K2) per step, kept for backward. A list of (B, S, A) blocks rather than one
        # (T, B, S, A) tensor: blocks stay under glibc's mmap threshold, so their pages are reused.
        energies = []
        v_column = v.reshape(att, 1)
        h = h0
        for t in range(steps):
            from_state = torch.addmm(b_state, h, w_state.t())  # (B, A + 3H): W_q s + b_q, W_hh s + b_hh
            q, gh = from_state[:, :att], from_state[:, att:]
            z = torch.add(keys, q.unsqueeze(1), alpha=2.0).sigmoid_()  # (B, S, A)
            energies.append(z)
            scores = (z.view(-1, att) @ v_column).view(batch, src_len).mul_(2.0)  # (B, S)
            alpha = torch.softmax(scores.masked_fill_(padding, float("-inf")), dim=-1)
            alphas[t] = alpha
            c = torch.bmm(alpha.unsqueeze(1), values, out=contexts[t].unsqueeze(1)).squeeze(1)  # (B, E)
            torch.addmm(emb_gates[t], c, w_ctx.t(), out=gates[t])  # (B, 3H) input gates
            h = gru_step(gates[t], gh, h, gates[t], hidden_n[t], out=tops[t])
        ctx.save_for_backward(h0, values, v, w_ctx, w_state, tops, contexts, alphas, gates, hidden_n)
        ctx.energies = energies
        return tops, contexts

    @staticmethod
    @once_differentiable
    def backward(ctx, d_tops, d_contexts):
        h0, values, v, w_ctx, w_state, tops, contexts, alphas, gates, hidden_n = ctx.saved_tensors
        energies, ctx.energies = ctx.energies, None  # overwritten below: backward runs once
        if energies is None:
            raise RuntimeError("gru_attention_recurrence reuses its saved activations: backward only once")
        steps, batch, hidden = tops.shape
        att = v.size(1)
        d_tops = torch.zeros_like(tops) if d_tops is None else d_tops
        d_contexts = torch.zeros_like(contexts) if d_contexts is None else d_contexts
        values_t = values.transpose(1, 2).contiguous()  # (B, E, S)
        d_energy_sum = torch.zeros_like(energies[0])  # sum_t d(score) * sigmoid'; d_keys is this times v
        d_v = v.new_zeros(1, att)
        d_input_gates = torch.empty_like(gates)  # also the gradient of emb_gates
        d_state = h0.new_empty(steps, batch, w_state.size(0))  # d(W_q s + b_q), d(W_hh s + b_hh) per step
        d_c = torch.empty_like(contexts)
        dh = torch.zeros_like(h0)
        for t in reversed(range(steps)):
            h_prev = h0 if t == 0 else tops[t - 1]
            d_input_gates[t], d_state[t, :, att:], dh_direct = gru_step_backward(
                dh + d_tops[t], gates[t], h_prev, hidden_n[t])
            dc = torch.addmm(d_contexts[t], d_input_gates[t], w_ctx, out=d_c[t])  # (B, E)
            # c = alpha V;  alpha = softmax(2 v^T z);  z = sigmoid(2 q + K2)
            alpha = alphas[t]
            d_alpha = torch.bmm(dc.unsqueeze(1), values_t).squeeze(1)  # (B, S)
            d_scores = alpha * (d_alpha - (alpha * d_alpha).sum(1, keepdim=True))  # (B, S); 0 at padding
            d_scores.mul_(2.0)
            z = energies[t]  # (B, S, A)
            d_v.addmm_(d_scores.view(1, -1), z.view(-1, att))
            sig_grad = z.addcmul_(z, z, value=-1.0)  # sigmoid' = z (1 - z), in place
            d_energy_sum.addcmul_(sig_grad, d_scores.unsqueeze(2))
            d_q = torch.bmm(d_scores.unsqueeze(1), sig_grad).squeeze(1)  # (B, A), times v below
            torch.mul(d_q, v, out=d_state[t, :, :att]).mul_(2.0)
            dh = torch.addmm(dh_direct, d_state[t], w_state)  # (B, H)
        # Weight gradients: one product over all steps each.
        h_prevs = torch.cat([h0.unsqueeze(0), tops[:-1]]).view(-1, hidden)  # (T*B, H)
        flat_state = d_state.view(-1, d_state.size(2))
        d_w_state = flat_state.t() @ h_prevs  # (A + 3H, H)
        d_b_state = flat_state.sum(0)
        d_w_ctx = d_input_gates.view(-1, gates.size(2)).t() @ contexts.view(-1, contexts.size(2))
        d_values = torch.bmm(alphas.permute(1, 2, 0), d_c.transpose(0, 1))  # (B, S, T) @ (B, T, E)
        d_keys = d_energy_sum.mul_(v.view(1, 1, att))
        return (d_input_gates, dh, d_keys, d_values, None, d_w_state[:att], d_b_state[:att], d_v, d_w_ctx,
                d_w_state[att:], d_b_state[att:])


def gru_attention_recurrence(
    emb_gates: torch.Tensor, h0: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
    w_query: torch.Tensor, b_query: torch.Tensor, v: torch.Tensor, w_ctx: torch.Tensor, w_hh: torch.Tensor,
    b_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All T steps of s_t = GRU([e_t; c_t], s_{t-1}), c_t = attention(s_{t-1}).

    Returns tops s_1..s_T (T, B, H) and contexts c_1..c_T (T, B, E).
    """
    return _GRUAttentionRecurrence.apply(emb_gates, h0, keys, values, mask, w_query, b_query, v, w_ctx, w_hh, b_hh)


def fused_recurrence(decoder: ConditionalDecoder, embedded: torch.Tensor, state: DecoderState,
                     encoded: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """`stepwise_recurrence` of one GRU layer with attention: embedded (batch, tgt_len, emb) -> tops
    (batch, tgt_len, hidden), contexts (batch, tgt_len, enc_out)."""
    cell, attention, emb = decoder.cells[0], decoder.attention, decoder.config.emb_size
    # The embedding's share of the input gates, W_ih[:, :emb] e_t + b_ih, for all steps at once.
    emb_gates = nn.functional.linear(embedded.transpose(0, 1), cell.weight_ih[:, :emb], cell.bias_ih)  # (T, B, 3H)
    tops, contexts = gru_attention_recurrence(
        emb_gates, state.hidden[0], encoded.keys, encoded.outputs, encoded.mask,
        attention.query_layer.weight, attention.query_layer.bias, attention.energy_layer.weight,
        cell.weight_ih[:, emb:], cell.weight_hh, cell.bias_hh,
    )
    return tops.transpose(0, 1), contexts.transpose(0, 1)


FUSED_RECURRENCE = RecurrenceKernel(
    "fused-gru-attention", Support(cells=("gru",), attentions=("bahdanau",), max_layers=1), fused_recurrence)
