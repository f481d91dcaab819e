"""Choosing a model's kernel, once: when a model folder is loaded, or when a trainer builds its model.

The tables list the kernels fastest first; the choice is the first that covers the model's configuration,
its device and the precision. `auto` resolves to a precision by the rule in `resolve_precision`.
"""

from __future__ import annotations

import logging

import torch

from model.config import ModelConfig
from model.cpu_features import cpu_features
from model.errors import PrecisionError
from model.kernels.base import PRECISIONS, EncoderKernel, Kernel, RecurrenceKernel, StepKernel
from model.kernels.bf16 import BF16_STEP
from model.kernels.encoder import INT8_ENCODER, REFERENCE_ENCODER
from model.kernels.feature_major import FEATURE_MAJOR_STEP
from model.kernels.fused_recurrence import FUSED_RECURRENCE
from model.kernels.int8 import INT8_AMX_STEP, INT8_STEP
from model.kernels.reference import REFERENCE_RECURRENCE, REFERENCE_STEP
from model.kernels.vocab_major import VOCAB_MAJOR_STEP

log = logging.getLogger(__name__)

STEP_KERNELS: tuple[StepKernel, ...] = (INT8_AMX_STEP, INT8_STEP, BF16_STEP, FEATURE_MAJOR_STEP, VOCAB_MAJOR_STEP,
                                        REFERENCE_STEP)
RECURRENCE_KERNELS: tuple[RecurrenceKernel, ...] = (FUSED_RECURRENCE, REFERENCE_RECURRENCE)
# The encoder in the step's precision where a kernel covers it (int8 GRU/LSTM), else the fp32 reference.
ENCODER_KERNELS: tuple[EncoderKernel, ...] = (INT8_ENCODER, REFERENCE_ENCODER)

# `auto` leaves a decoder in fp32 when its per-step products are smaller than this (multiply-adds per row):
# quantizing every product's input costs a pass over it, and for a tiny model that pass, not the product,
# is the work. The shipped models (hidden 512, vocabulary 8000) do about 4.5M; a test model with hidden 32
# about 10k. The threshold sits between, not at a measured break-even.
TINY_STEP_MACS = 250_000


def step_macs(config: ModelConfig) -> int:
    """Multiply-adds per row of the decoder step's matrix products (attention's elementwise work aside)."""
    hidden, enc = config.decoder_hidden, config.encoder_output_size
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[config.cell] * hidden
    macs = config.decoder_hidden * config.attention_size if config.attention == "bahdanau" else 0
    for layer in range(config.decoder_layers):
        macs += gates * ((config.emb_size + enc if layer == 0 else hidden) + hidden)
    return macs + (hidden + enc + config.emb_size) * config.readout_size + config.readout_size * config.tgt_vocab_size


def resolve_precision(precision: str, config: ModelConfig, device: torch.device) -> str:
    """`precision` checked against what the device can do; `auto` made concrete.

    The rule for auto: on CPU, int8 where PyTorch's x86 int8 engine runs (any x86 CPU with AVX2) and the
    model is not tiny (TINY_STEP_MACS) and an int8 kernel covers its configuration; otherwise fp32. bf16 is
    never chosen automatically: it is only asked for (its rounding is coarser than int8's per-channel
    scales, and on the CPUs that have it int8 runs on the same matrix units). On other devices, fp32.
    """
    if precision not in PRECISIONS + ("auto",):
        raise PrecisionError(f"precision must be one of fp32, bf16, int8, auto; got {precision!r}")
    features = cpu_features()
    if precision == "auto":
        int8_covers = any(k.support.covers(config, device.type, "int8") for k in STEP_KERNELS)
        if device.type == "cpu" and features.int8 and int8_covers and step_macs(config) >= TINY_STEP_MACS:
            return "int8"
        return "fp32"
    if precision != "fp32" and device.type != "cpu":
        raise PrecisionError(f"--precision {precision} is for CPU decoding; on {device.type} use fp32")
    if precision == "int8" and not features.int8:
        raise PrecisionError(f"int8 decoding needs an x86 CPU with AVX2 and PyTorch's x86 int8 engine; this one "
                             f"is {features.describe()}")
    if precision == "bf16" and not features.native_bf16:
        raise PrecisionError("bf16 decoding needs a CPU with native bf16 (AVX512-BF16 or AMX); this one has "
                             f"neither ({features.describe()}): use --precision int8 or fp32")
    return precision


def choose_kernel(config: ModelConfig, device: torch.device | str, precision: str = "fp32",
                  autocast: bool = False) -> Kernel:
    """The search step and training recurrence for this model, device and precision (see the tables above).

    autocast: the model will train under torch.autocast (mixed precision), which not every recurrence allows.
    """
    device = torch.device(device)
    precision = resolve_precision(precision, config, device)
    flags = cpu_features().flags if device.type == "cpu" else frozenset()
    steps = [k for k in STEP_KERNELS if k.support.covers(config, device.type, precision, autocast, flags)]
    if not steps:
        claims = "; ".join(k.support.describe() for k in STEP_KERNELS if k.support.precision == precision)
        raise PrecisionError(f"no {precision} kernel for a {config.cell} decoder with {config.decoder_layers} "
                             f"layer(s) and attention {config.attention} on {device.type} (they cover: {claims})")
    recurrence = next(k for k in RECURRENCE_KERNELS if k.support.covers(config, device.type, "fp32", autocast))
    encoder = next((k for k in ENCODER_KERNELS if k.support.covers(config, device.type, precision, autocast, flags)),
                   REFERENCE_ENCODER)
    kernel = Kernel(precision, steps[0], recurrence, encoder)
    log.debug("kernel for %s on %s: %s", config.cell, device.type, kernel.describe())
    return kernel


def kernel_table() -> list[dict[str, str]]:
    """Every kernel and what it claims, for reports."""
    return ([{"part": "search step", "name": k.name, "supports": k.support.describe()} for k in STEP_KERNELS]
            + [{"part": "training recurrence", "name": k.name, "supports": k.support.describe()}
               for k in RECURRENCE_KERNELS]
            + [{"part": "encoder", "name": k.name, "supports": k.support.describe()} for k in ENCODER_KERNELS])
