"""bf16 search step: the decoder's per-step products with bf16 weights and inputs (fp32 accumulation in
oneDNN's bf16 kernels, AVX512-BF16 or AMX), their results and everything between them in fp32.

Only where the CPU computes bf16 natively (model/cpu_features.py); the products are those of
model/kernels/row_major.py. Results are rounded to bf16 by the product (8 significant bits) before the
fp32 bias is added, so logits differ from fp32 by up to about 0.4% of their size.
"""

from __future__ import annotations

import torch

from model.kernels.row_major import Linear, row_major_kernel


def bf16_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
    """x (rows, in) fp32 -> x W^T + b with W and x in bf16."""
    weight_t = weight.to(torch.bfloat16).t().contiguous()  # (in, out): x @ W^T as one plain product
    bias = None if bias is None else bias.float().contiguous()

    def linear(x: torch.Tensor) -> torch.Tensor:
        product = torch.mm(x.to(torch.bfloat16), weight_t).float()  # (rows, out)
        return product if bias is None else product.add_(bias)

    return linear


BF16_STEP = row_major_kernel("bf16-row-major", "bf16", bf16_linear)
