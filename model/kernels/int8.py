"""int8 search step: dynamic quantization of the decoder's per-step products (Jacob et al. 2018, arXiv:1712.05877).

Weights are quantized once, per output channel, symmetric (scale = max |w| / 127); each product's input
is quantized per tensor at every call from its own range, and the int32 result is scaled back to fp32
with the bias added, in one call of PyTorch's x86 engine (`quantized::linear_dynamic`: fbgemm, or oneDNN,
AVX2 and up; VNNI / AMX-INT8 where present). The products are the GRU input and hidden gates, the
attention query, the readout and the vocabulary projection; see model/kernels/row_major.py for the rest.

Two kernels, the same arithmetic:
- `int8-row-major`: fbgemm (torch's "x86" engine), on any x86 CPU with AVX2.
- `int8-amx-row-major`, chosen on CPUs with AMX-INT8: a product of many rows (a batch, a beam: >= AMX_MIN_ROWS)
  runs on oneDNN, whose AMX tiles do it in about half of fbgemm's time; a few rows stay on fbgemm, which is
  faster there (setting up the tiles costs more than a one-row product). Each product is packed for both.
  Measured at 64 rows (torch 2.13, 2 threads; `ONEDNN_MAX_CPU_ISA` to see oneDNN without AMX), microseconds:

  | product (out x in)        | fbgemm | oneDNN AMX | oneDNN AVX512-VNNI | oneDNN AVX2 |
  |---------------------------|--------|------------|--------------------|-------------|
  | vocabulary 10000 x 256    |    415 |        238 |                405 |       1,603 |
  | state 2048 x 512          |    139 |        105 |                148 |         536 |
  | one row, vocabulary       |     32 |         58 |                 53 |         376 |

  so oneDNN is chosen only with AMX. Its activations use all 8 bits (fbgemm's 7, below), a little closer to fp32.
  oneDNN builds and caches a primitive for every input shape (up to 1,024), and search's row count changes
  whenever a sentence finishes: 60 batches of 1-40 beam-5 sentences grew the process by 173 MB (fbgemm alone:
  113 MB). So the rows go to oneDNN padded to a multiple of AMX_MIN_ROWS: a few shapes, 88 MB, the same speed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from model.cpu_features import cpu_features
from model.kernels.row_major import Linear, row_major_kernel

AMX_MIN_ROWS = 32  # products of at least this many rows go to oneDNN in the AMX kernel (between 16 and 64 rows,
# where the two engines cross: 16 rows 61 vs 46 us, 64 rows 105 vs 139 us on the state product)


@contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Pack under `engine`: PyTorch's prepack reads the engine from a process-wide setting, set back after.
    Packing happens when a model is loaded; a packed weight then runs on its own engine whatever the setting."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def int8_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    """x (rows, in) fp32 -> x W^T + b through int8, for the current quantized engine."""
    engine = torch.backends.quantized.engine
    # fbgemm's AVX2 kernels sum pairs of u8 x s8 products in 16 bits: 7-bit activations keep that from
    # saturating (what torch's own default dynamic qconfig does for these engines). oneDNN does the same on
    # CPUs without VNNI/AMX (its "int8 computation nuances"); the AMX kernel never runs it there, its test does.
    reduce_range = engine in ("x86", "fbgemm") or not cpu_features().int8_dot_products
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


def amx_int8_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    """`int8_linear` on fbgemm for fewer than AMX_MIN_ROWS rows, on oneDNN (AMX) for more."""
    few = int8_linear(weight, bias)  # under the default engine
    if "onednn" not in torch.backends.quantized.supported_engines:
        return few
    with quantized_engine("onednn"):
        many = int8_linear(weight, bias)
    min_rows = AMX_MIN_ROWS

    def linear(x: torch.Tensor) -> torch.Tensor:
        rows = x.size(0)
        if rows < min_rows:
            return few(x)
        pad = -rows % min_rows  # rows in multiples of AMX_MIN_ROWS: a few shapes (see the module doc)
        if pad:  # zero rows: they change neither the input's range (its quantization) nor the other rows
            return many(torch.cat([x, x.new_zeros(pad, x.size(1))]))[:rows]
        return many(x)

    return linear


INT8_STEP = row_major_kernel("int8-row-major", "int8", int8_linear)
INT8_AMX_STEP = row_major_kernel("int8-amx-row-major", "int8", amx_int8_linear, cpu_flags=("amx_int8",))
