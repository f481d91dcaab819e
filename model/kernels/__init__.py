"""Speed kernels beside the reference decoder (model/decoder.py), chosen once per model.

    base.py              Support, StepKernel, RecurrenceKernel, Kernel: what a kernel is and claims
    choice.py            choose_kernel(config, device, precision): the tables, fastest first, and `auto`
    reference.py         the reference network itself (every configuration; the yardstick)
    vocab_major.py       fp32 step, every cell: the vocabulary projection as W_v @ o^T
    feature_major.py     fp32 step, GRU: every product as W @ x^T (MKL's fast orientation for few rows)
    row_major.py         the GRU step over products in another precision, written once
    int8.py, bf16.py     those products in int8 (dynamic quantization) and bf16
    fused_recurrence.py  training: GRU + attention over all steps with a hand-written backward (gru.py)
    selection.py         search's reductions over the vocabulary (log-normalizer, argmax, top-k)
"""

from model.kernels.base import Kernel
from model.kernels.choice import choose_kernel, kernel_table, resolve_precision

__all__ = ["Kernel", "choose_kernel", "kernel_table", "resolve_precision"]
