"""The search step of a GRU decoder over its products in another precision (int8, bf16), written once.

Each product is a `Linear` (x (rows, in) fp32 -> x W^T + b, (rows, out) fp32) that the precision's module
builds from the decoder's weights once (model/kernels/int8.py, bf16.py). Everything between products (the
attention's elementwise work and softmax, the gates, the embedding) stays fp32, so only the weights and
the products' inputs are rounded. Row-major, as PyTorch's quantized and bf16 products are; the logits are
returned as a (vocab, rows) view of the (rows, vocab) product.
The top layer's hidden gates and the attention query read the same s_{t-1}: one product for both.
Eval mode only (no dropout), as search is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from model.decoder import ConditionalDecoder, DecoderState
from model.encoder import EncoderOutput
from model.kernels.base import StepFn, StepKernel, Support, output_rows
from model.shortlist import TargetVocabulary

Linear = Callable[[torch.Tensor], torch.Tensor]  # x (rows, in) fp32 -> (rows, out) fp32
MakeLinear = Callable[[torch.Tensor, torch.Tensor | None], Linear]  # (weight (out, in), bias (out,)) -> Linear


@dataclass(frozen=True)
class PackedDecoder:
    """The decoder's per-step products in a kernel's precision; the rest is read from `decoder`."""

    decoder: ConditionalDecoder
    top_state: Linear  # s_{t-1} of the top layer -> [W_q s + b_q; W_hh s + b_hh]: (rows, attention + 3H)
    lower_hidden: list[Linear]  # W_hh s + b_hh of each layer below the top
    inputs: list[Linear]  # W_ih x + b_ih of every layer
    readout: Linear  # W_o [s; c; e] + b_o
    output: Linear  # W_v o: (rows, vocab)
    query_size: int  # attention size, 0 without attention

    def output_for(self, vocab: TargetVocabulary | None) -> Linear:
        """W_v o over the whole vocabulary, or over a shortlist's rows in fp32 from the decoder's own W_v (kept,
        in fp16, when tied to the embedding: the released models). Packing a few hundred rows anew for every
        search would cost more than it saves (fbgemm's prepack: 3 ms for 832 x 256; the fp32 product of those
        rows: 29 us for one row, against 113-199 us for all 10,000 in int8; 2 cores, AVX2). An untied W_v was
        released after packing: then the whole product runs and the rows are picked from it (no faster)."""
        if vocab is None:
            return self.output
        if self.decoder.output_projection.weight.is_meta:
            return vocab.product("row-major-output", lambda ids: lambda x: self.output(x)[:, ids])
        rows = output_rows(self.decoder, vocab)  # (len(vocab), readout) fp32
        return lambda x: x @ rows.t()


def pack_decoder(decoder: ConditionalDecoder, make_linear: MakeLinear) -> PackedDecoder:
    """The decoder's products through `make_linear` (detached copies: the packed decoder does not train)."""
    with torch.no_grad():
        top = decoder.cells[-1]
        weight, bias = top.weight_hh, top.bias_hh
        query_size = 0
        if decoder.attention is not None:
            query = decoder.attention.query_layer
            weight, bias = torch.cat([query.weight, weight]), torch.cat([query.bias, bias])
            query_size = query.weight.size(0)
        return PackedDecoder(
            decoder=decoder,
            top_state=make_linear(weight.detach(), bias.detach()),
            lower_hidden=[make_linear(c.weight_hh.detach(), c.bias_hh.detach()) for c in decoder.cells[:-1]],
            inputs=[make_linear(c.weight_ih.detach(), c.bias_ih.detach()) for c in decoder.cells],
            readout=make_linear(decoder.readout.weight.detach(), decoder.readout.bias.detach()),
            output=make_linear(decoder.output_projection.weight.detach(), None),
            query_size=query_size)


def gru_gates(input_gates: torch.Tensor, hidden_gates: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """s' = n + u (s - n) from gi = W_ih x + b_ih and gh = W_hh s + b_hh, each (rows, 3H); state (rows, H)."""
    hidden = state.size(1)
    ru = torch.add(input_gates[:, : 2 * hidden], hidden_gates[:, : 2 * hidden]).sigmoid_()  # reset, update
    n = torch.addcmul(input_gates[:, 2 * hidden:], ru[:, :hidden], hidden_gates[:, 2 * hidden:]).tanh_()
    return torch.addcmul(n, ru[:, hidden:], state - n)  # (rows, H)


def row_major_step(packed: PackedDecoder, prev_embedded: torch.Tensor, state: DecoderState,
                   encoded: EncoderOutput, vocab: TargetVocabulary | None = None
                   ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
    """prev_embedded: (rows, emb) -> logits (vocab, rows), the new state, attention (rows, src_len) | None."""
    decoder, att = packed.decoder, packed.query_size
    from_top = packed.top_state(state.hidden[-1])  # (rows, att + 3H)
    if att:
        context, weights = decoder.attend(from_top[:, :att], encoded)  # (rows, enc), (rows, src)
    else:
        context, weights = encoded.final, None
    layer_input = torch.cat([prev_embedded, context], dim=1)  # (rows, emb + enc_out)
    layers = len(packed.inputs)
    new_hidden = []
    for layer in range(layers):
        h = state.hidden[layer]  # (rows, H)
        hidden_gates = from_top[:, att:] if layer == layers - 1 else packed.lower_hidden[layer](h)
        h = gru_gates(packed.inputs[layer](layer_input), hidden_gates, h)
        new_hidden.append(h)
        layer_input = h
    readout = packed.readout(torch.cat([new_hidden[-1], context, prev_embedded], dim=1)).tanh_()  # (rows, R)
    logits = packed.output_for(vocab)(readout)  # (rows, vocab)
    # A transposed view, not a copy: search's reductions over the vocabulary read either layout, and the
    # copy cost about a third of the int8 vocabulary product at 64 rows x 8000.
    hidden = torch.stack(new_hidden) if layers > 1 else new_hidden[0].unsqueeze(0)  # (layers, rows, H)
    return logits.t(), DecoderState(hidden, None), weights


def _to_fp32(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    return output.float()


def half_lookup_table(embedding: nn.Embedding) -> int:
    """Keep an embedding's table in fp16 when every weight is an fp16 value (a model exported in fp16, as the
    released ones are), its lookups converted back to fp32: the same values at half the memory. Returns the
    bytes freed, 0 (nothing changed) when fp16 would round a weight."""
    weight = embedding.weight.detach()
    half = weight.half()
    if weight.dtype != torch.float32 or not torch.equal(half.float(), weight):
        return 0
    embedding.weight = nn.Parameter(half, requires_grad=False)
    embedding.register_forward_hook(_to_fp32)
    return weight.numel() * (weight.element_size() - half.element_size())


def release_packed_weights(decoder: ConditionalDecoder) -> int:
    """Replace the decoder's own copies of the weights `pack_decoder` packs by their shapes alone (meta tensors),
    and return the bytes freed: the packed step never reads them again. A vocabulary projection tied to the
    embedding, which the step and the encoder still look up, becomes an fp16 lookup table where that loses
    nothing (`half_lookup_table`), else stays. The decoder then runs only through the packed step: the
    reference step, training and another kernel's `bind` need a model loaded anew.
    """
    freed = 0
    if decoder.output_projection.weight is decoder.embedding.weight:
        freed += half_lookup_table(decoder.embedding)
        decoder.output_projection.weight = decoder.embedding.weight  # still tied: one table, counted once
    layers: list[tuple[nn.Module, tuple[str, ...]]] = [
        *((cell, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for cell in decoder.cells),
        (decoder.readout, ("weight", "bias")), (decoder.output_projection, ("weight",))]
    if decoder.attention is not None:
        layers.append((decoder.attention.query_layer, ("weight", "bias")))
    for module, names in layers:
        for name in names:
            weight = getattr(module, name)
            if weight is None or weight.is_meta or weight is decoder.embedding.weight:
                continue
            freed += weight.numel() * weight.element_size()
            setattr(module, name, nn.Parameter(weight.detach().to("meta"), requires_grad=weight.requires_grad))
    return freed


def row_major_kernel(name: str, precision: str, make_linear: MakeLinear, cpu_flags: tuple[str, ...] = ()
                     ) -> StepKernel:
    """A GRU search step whose products are `make_linear`'s (int8, bf16), packed once when the kernel is bound."""

    def bind(decoder: ConditionalDecoder) -> StepFn:
        packed = pack_decoder(decoder, make_linear)
        return lambda prev_embedded, state, encoded, vocab=None: row_major_step(packed, prev_embedded, state,
                                                                               encoded, vocab)

    return StepKernel(name, Support(cells=("gru",), devices=("cpu",), precision=precision, dtypes=(torch.float32,),
                                    cpu_flags=cpu_flags), bind, release_packed_weights)
