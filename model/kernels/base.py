"""What a kernel is: a faster way to run part of the reference decoder (model/decoder.py), and what it supports.

Two parts of the decoder run often enough to have kernels:
- the search step: y_{t-1}'s embedding, the state and the encoder output -> vocabulary-major logits
  (vocab, rows), the new state and the attention weights (what `Seq2Seq.decode_step` returns);
- the teacher-forced recurrence of training: all target steps -> tops s_t and contexts c_t.
Each kernel declares the configurations, devices and precisions it computes exactly what the reference
computes (tests/model/test_kernels.py holds every kernel to that on every configuration it claims).
A `Kernel` pairs one of each; model/kernels/choice.py picks it once per model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from model.config import ATTENTIONS, CELLS, ModelConfig
from model.decoder import ConditionalDecoder, DecoderState, Recurrence
from model.encoder import EncoderOutput
from model.shortlist import TargetVocabulary

PRECISIONS = ("fp32", "bf16", "int8")  # what the decoder's matrix products compute in

# (prev_embedded (rows, emb), state, encoded, vocabulary) -> logits (vocab, rows), new state, attention
# (rows, src_len) | None. With a TargetVocabulary (model/shortlist.py) the logits have its rows only, in its order.
StepFn = Callable[[torch.Tensor, DecoderState, EncoderOutput, TargetVocabulary | None],
                  tuple[torch.Tensor, DecoderState, torch.Tensor | None]]


def output_rows(decoder: ConditionalDecoder, vocab: TargetVocabulary | None) -> torch.Tensor:
    """The vocabulary projection's weight (vocab, readout), or its rows for a shortlist's vocabulary (rows,
    readout), gathered once per search, in fp32 where the weight is kept in fp16 (model/kernels/row_major.py)."""
    weight = decoder.output_projection.weight
    if vocab is None:
        return weight
    return vocab.product("output-rows", lambda ids: weight.index_select(0, ids).to(torch.promote_types(
        weight.dtype, torch.float32)))


@dataclass(frozen=True)
class Support:
    """The configurations, devices and precisions a kernel claims.

    dtypes: the weight dtypes it reads (the fp32 kernels also run a float64 model, which the tests use).
    autocast: whether it may run under torch.autocast (mixed-precision training on CUDA).
    cpu_flags: CPU features (/proc/cpuinfo names) it is chosen for: it computes the same anywhere, but is only
    faster where the CPU has these (model/cpu_features.py).
    """

    cells: tuple[str, ...] = CELLS
    attentions: tuple[str, ...] = ATTENTIONS
    max_layers: int | None = None  # decoder layers; None: any number
    devices: tuple[str, ...] = ("cpu", "cuda")
    precision: str = "fp32"
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    autocast: bool = False
    cpu_flags: tuple[str, ...] = ()

    def covers(self, config: ModelConfig, device: str, precision: str, autocast: bool = False,
               cpu_flags: frozenset[str] | None = None) -> bool:
        """cpu_flags: the CPU's features, to choose by them; None: what the kernel computes, wherever it runs."""
        return (config.cell in self.cells and config.attention in self.attentions
                and (self.max_layers is None or config.decoder_layers <= self.max_layers)
                and device in self.devices and precision == self.precision and (self.autocast or not autocast)
                and (cpu_flags is None or set(self.cpu_flags) <= cpu_flags))

    def describe(self) -> str:
        layers = "any" if self.max_layers is None else f"<= {self.max_layers}"
        needs = f", for CPUs with {'/'.join(self.cpu_flags)}" if self.cpu_flags else ""
        return (f"cells {'/'.join(self.cells)}, attention {'/'.join(self.attentions)}, layers {layers}, "
                f"devices {'/'.join(self.devices)}, {self.precision}{needs}")


@dataclass(frozen=True)
class StepKernel:
    """A search step. `bind` puts the decoder's weights in the kernel's own layout once (quantized,
    converted, or the decoder's own tensors) and returns the step over them.

    release: for a step that keeps its own copy of some weights, frees the decoder's copies that neither the
    step nor the encoder reads (a model loaded only to decode; model/checkpoint.py). None: it reads them all.
    """

    name: str
    support: Support
    bind: Callable[[ConditionalDecoder], StepFn]
    release: Callable[[ConditionalDecoder], int] | None = None


@dataclass(frozen=True)
class RecurrenceKernel:
    """A teacher-forced recurrence (training); it reads the decoder's parameters live, so it can be trained."""

    name: str
    support: Support
    run: Recurrence


# packed embeddings -> packed outputs and the final hidden state (h, or (h, c) for an LSTM), as nn.RNNBase returns
RnnFn = Callable[[PackedSequence], tuple[PackedSequence, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class EncoderKernel:
    """How the encoder's recurrent network runs (model/kernels/encoder.py). `bind` makes it from the trained
    module once; `release`, as for a step, frees the module's weights that the bound copy no longer reads."""

    name: str
    support: Support
    bind: Callable[[nn.RNNBase], RnnFn]
    release: Callable[[nn.RNNBase], int] | None = None


@dataclass(frozen=True)
class Kernel:
    """The search step and the training recurrence one model runs, chosen once (model/kernels/choice.py)."""

    precision: str
    step: StepKernel
    recurrence: RecurrenceKernel
    encoder: EncoderKernel

    @property
    def name(self) -> str:
        """The decoding path, as `rnnmt bench` and /languages show it: e.g. 'int8-row-major'."""
        return self.step.name

    def describe(self) -> str:
        return (f"{self.precision}: search step {self.step.name}, encoder {self.encoder.name}, "
                f"training recurrence {self.recurrence.name}")
