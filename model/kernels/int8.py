"""int8 search step: dynamic quantization of the decoder's per-step products (Jacob et al. 2018, arXiv:1712.05877).

Weights are quantized once, per output channel, symmetric (scale = max |w| / 127); each product's input
is quantized per tensor at every call from its own range, and the int32 result is scaled back to fp32
with the bias added, in one call of PyTorch's x86 engine (`quantized::linear_dynamic`: fbgemm, or oneDNN,
AVX2 and up; VNNI / AMX-INT8 where present). The products are the GRU input and hidden gates, the
attention query, the readout and the vocabulary projection; see model/kernels/row_major.py for the rest.
"""

from __future__ import annotations

import warnings

import torch

from model.kernels.row_major import Linear, row_major_kernel


def int8_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    """x (rows, in) fp32 -> x W^T + b through int8, for the current quantized engine."""
    engine = torch.backends.quantized.engine
    # fbgemm's AVX2 kernels sum pairs of u8 x s8 products in 16 bits: 7-bit activations keep that from
    # saturating (what torch's own default dynamic qconfig does for these engines).
    reduce_range = engine in ("x86", "fbgemm")
    weight = weight.float().contiguous()
    scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()  # (out,)
    with warnings.catch_warnings():  # quantized tensors are deprecated in favour of torchao, still supported
        warnings.filterwarnings("ignore", message=".*quantize_per.*deprecated", category=UserWarning)
        quantized = torch.quantize_per_channel(weight, scales, torch.zeros_like(scales, dtype=torch.long), 0,
                                               torch.qint8)
        packed = torch.ops.quantized.linear_prepack(quantized, None if bias is None else bias.float().contiguous())

    def linear(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, packed, reduce_range)

    return linear


INT8_STEP = row_major_kernel("int8-row-major", "int8", int8_linear)
