"""The encoder's recurrence, as a kernel: the reference nn.GRU/LSTM/RNN, or the same network in int8.

The encoder runs once per sentence, over every source token, in both directions: at batch 64 it is about a
fifth of greedy decoding's time, the same in every precision unless it has a kernel of its own. The int8 one
is PyTorch's dynamically quantized GRU/LSTM (weights int8 per tensor, each product's input quantized from its
range at every call; fbgemm or oneDNN, AVX2 and up), built from the trained module once when the kernel is
bound. It reads the packed sequence the reference reads and returns what it returns, to int8 rounding
(tests/model/test_kernels.py; BLEU in the README's precision table). It stays on fbgemm on AMX CPUs too:
packed for oneDNN, the shipped en-de encoder took 9.9 ms for 64 sentences against fbgemm's 9.3.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from model.kernels.base import EncoderKernel, RnnFn, Support


def _reference(rnn: nn.RNNBase) -> RnnFn:
    return rnn.__call__  # the module itself, trainable (a bound method: not registered as a submodule)


def _int8(rnn: nn.RNNBase) -> RnnFn:
    with warnings.catch_warnings():  # torch.ao quantization is deprecated in favour of torchao, still supported
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*(deprecated|quantiz).*", category=UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(rnn), {type(rnn)}, dtype=torch.qint8)[0]
    quantized.eval()
    return _packed_gru(quantized) if isinstance(rnn, nn.GRU) else quantized.__call__


def _packed_gru(gru: nn.Module) -> RnnFn:
    """The quantized GRU module's `forward_packed`, calling the op's packed-sequence overload by name. Called as
    `torch.quantized_gru`, the dispatcher tries the padded overload first and formats the arguments for its
    mismatch message, the initial state's repr included: ~1 ms a call, 10% of one sentence's int8 latency."""
    params = [weight.param for weight in gru._all_weight_values]
    states = gru.num_layers * (2 if gru.bidirectional else 1)

    def run(packed: PackedSequence) -> tuple[PackedSequence, torch.Tensor]:
        data, batch_sizes, sorted_indices, unsorted_indices = packed
        hx = data.new_zeros(states, int(batch_sizes[0]), gru.hidden_size)  # (layers * directions, batch, hidden)
        output, hidden = torch.ops.aten.quantized_gru.data(data, batch_sizes, hx, params, gru.bias, gru.num_layers,
                                                           0.0, False, gru.bidirectional)
        if unsorted_indices is not None:
            hidden = hidden.index_select(1, unsorted_indices)
        return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), hidden

    return run


def _release(rnn: nn.RNNBase) -> int:
    """The module's weights replaced by their shapes alone (meta tensors): the quantized copy runs instead."""
    freed = 0
    for name in rnn._flat_weights_names:
        weight = getattr(rnn, name)
        if weight is not None and not weight.is_meta:
            freed += weight.numel() * weight.element_size()
            setattr(rnn, name, nn.Parameter(weight.detach().to("meta"), requires_grad=weight.requires_grad))
    return freed


REFERENCE_ENCODER = EncoderKernel("reference", Support(), _reference)
INT8_ENCODER = EncoderKernel("int8-dynamic", Support(cells=("gru", "lstm"), devices=("cpu",), precision="int8",
                                                     dtypes=(torch.float32,)), _int8, _release)
