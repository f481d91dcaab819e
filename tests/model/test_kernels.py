"""Every kernel computes what the reference decoder computes, on every configuration it claims.

fp32 kernels are held to the reference in float64 (outputs, states, attention; every gradient for training
kernels); int8 and bf16 kernels to fp32 within a tolerance and by how often they pick the same best token.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from model.config import ATTENTIONS, CELLS, PAD_ID, ModelConfig
from model.cpu_features import cpu_features
from model.errors import PrecisionError
from model.kernels import choose_kernel
from model.kernels.base import RecurrenceKernel, StepKernel
from model.kernels.choice import ENCODER_KERNELS, RECURRENCE_KERNELS, STEP_KERNELS
from model.kernels.encoder import REFERENCE_ENCODER
from model.kernels.reference import REFERENCE_RECURRENCE, REFERENCE_STEP
from model.kernels.selection import argmax_over_vocab, chunk_maxima, chunk_size, log_normalizer, top_candidates
from model.search import SearchConfig, beam_search, greedy_search
from model.seq2seq import Seq2Seq
from model.shortlist import TargetVocabulary
from tests.model.test_seq2seq import reverse_batch, tiny_config

CONFIGS = [tiny_config(cell, attention, decoder_layers=layers)
           for cell, attention, layers in itertools.product(CELLS, ATTENTIONS, (1, 2))]


def config_id(config: ModelConfig) -> str:
    return f"{config.cell}-{config.attention}-{config.decoder_layers}layer"


def claimed(kernels, precision_of=lambda k: k.support.precision):
    """(kernel, config) for every configuration each kernel claims on the CPU."""
    return [pytest.param(k, c, id=f"{k.name}-{config_id(c)}") for k in kernels for c in CONFIGS
            if k not in (REFERENCE_STEP, REFERENCE_RECURRENCE) and k.support.covers(c, "cpu", precision_of(k))]


def available(kernel: StepKernel) -> None:
    if kernel.support.precision not in cpu_features().precisions():
        pytest.skip(f"this CPU has no {kernel.support.precision}: {cpu_features().describe()}")


def run_steps(model: Seq2Seq, kernel: StepKernel, reference_states: bool) -> list[tuple]:
    """Logits, states and attention of `kernel` over a few teacher-forced steps, rows reordered and joined
    midway as search does. reference_states: every step starts from the reference's state (no drift)."""
    decoder = model.decoder
    fast, reference = kernel.bind(decoder), REFERENCE_STEP.bind(decoder)
    src, src_lengths, tgt_in, _ = reverse_batch(torch.Generator().manual_seed(3), batch=5, min_len=1, max_len=6)
    results = []
    with torch.inference_mode():
        encoded = model.encode(src, src_lengths)
        fast_state = reference_state = model.init_state(encoded)
        for t in range(tgt_in.size(1)):
            embedded = decoder.embedding(tgt_in[:, t])
            start = reference_state if reference_states else fast_state
            fast_out, reference_out = fast(embedded, start, encoded), reference(embedded, reference_state, encoded)
            results.append((fast_out, reference_out))
            fast_state, reference_state = fast_out[1], reference_out[1]
            if t == 2:  # search reorders and joins states: a step must read any layout it is given
                order = torch.tensor([4, 0, 3, 1, 2])
                encoded = encoded.index_select(order).cat(encoded.narrow(0, 2))
                fast_state = fast_state.index_select(order).cat(fast_state.narrow(0, 2))
                reference_state = reference_state.index_select(order).cat(reference_state.narrow(0, 2))
                tgt_in = torch.cat([tgt_in[order], tgt_in[:2]])
    return results


FP32_STEPS = [k for k in STEP_KERNELS if k.support.precision == "fp32"]
LOW_PRECISION_STEPS = [k for k in STEP_KERNELS if k.support.precision != "fp32"]


@pytest.mark.parametrize(("kernel", "config"), claimed(FP32_STEPS))
def test_fp32_step_kernel_matches_the_reference_in_float64(kernel: StepKernel, config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(config).double().eval()
    for (logits, state, weights), (ref_logits, ref_state, ref_weights) in run_steps(model, kernel, False):
        torch.testing.assert_close(logits, ref_logits, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(state.hidden, ref_state.hidden, rtol=1e-10, atol=1e-12)
        if ref_state.cell is not None:
            torch.testing.assert_close(state.cell, ref_state.cell, rtol=1e-10, atol=1e-12)
        if ref_weights is not None:
            torch.testing.assert_close(weights, ref_weights, rtol=1e-10, atol=1e-12)
        else:
            assert weights is None


# Limits on the logits' error (mean and max of |fast - fp32|, over their standard deviation) and a floor on
# the rate at which the best token agrees. Seen on this test's model: mean <= 0.025, max <= 0.13, 34/35 rows
# (int8); bf16 is closer. A trained model agreed on every greedy output of 64 sentences (en-de, both).
TOLERANCE = {"int8": (0.05, 0.25, 0.9), "bf16": (0.05, 0.25, 0.9)}


@pytest.mark.parametrize(("kernel", "config"), claimed(LOW_PRECISION_STEPS))
def test_low_precision_step_kernel_is_close_to_fp32(kernel: StepKernel, config: ModelConfig) -> None:
    available(kernel)
    torch.manual_seed(0)
    config = ModelConfig(**{**config.to_dict(), "src_vocab_size": 500, "tgt_vocab_size": 500, "emb_size": 32,
                            "readout_size": 32, "decoder_hidden": 64, "attention_size": 48, "tie_embeddings": "none"})
    model = Seq2Seq(config).eval()
    with torch.no_grad():  # a trained model's distributions are peaked; a fresh one's are nearly flat
        model.decoder.output_projection.weight.mul_(8.0)
    mean_error, max_error, agree, total = 0.0, 0.0, 0, 0
    for (logits, state, weights), (ref_logits, ref_state, ref_weights) in run_steps(model, kernel, True):
        assert logits.dtype == torch.float32 and logits.shape == ref_logits.shape
        error = (logits - ref_logits).abs() / ref_logits.std()
        mean_error, max_error = max(mean_error, float(error.mean())), max(max_error, float(error.max()))
        agree += int((logits.argmax(0) == ref_logits.argmax(0)).sum())
        total += logits.size(1)
        torch.testing.assert_close(state.hidden, ref_state.hidden, rtol=0.0, atol=0.05)
        if ref_weights is not None:
            torch.testing.assert_close(weights, ref_weights, rtol=0.0, atol=0.05)
    mean_limit, max_limit, agreement_floor = TOLERANCE[kernel.support.precision]
    assert mean_error < mean_limit and max_error < max_limit, f"logit error {mean_error:.3f} mean, {max_error:.3f} max"
    assert agree / total >= agreement_floor, f"best token agrees in {agree}/{total} rows"


SHORTLIST_CASES = [pytest.param(k, c, tie, id=f"{k.name}-{config_id(c)}-tie-{tie}")
                   for k in STEP_KERNELS for c in CONFIGS for tie in ("all", "none")
                   if k.support.covers(c, "cpu", k.support.precision) and (tie == "all" or k.release)]


@pytest.mark.parametrize(("kernel", "config", "tie"), SHORTLIST_CASES)
def test_a_shortlisted_step_computes_those_rows_of_the_whole_step(kernel: StepKernel, config: ModelConfig,
                                                                  tie: str) -> None:
    """With a shortlist's vocabulary (model/shortlist.py) a step's logits are the rows of its whole logits: exactly
    for fp32 kernels (float64); for int8/bf16, whose shortlisted product runs in fp32 from the kept weights (or, for
    a released untied projection, picks rows of the whole product), within their precision. States and attention
    are the same."""
    available(kernel)
    torch.manual_seed(0)
    low = kernel.support.precision != "fp32"
    model = Seq2Seq(dataclasses.replace(config, tie_embeddings=tie)).eval()
    model = model if low else model.double()
    decoder = model.decoder
    step = kernel.bind(decoder)
    if kernel.release:
        kernel.release(decoder)  # as a model folder is loaded: the shortlist reads only what stays
    vocab = TargetVocabulary(torch.tensor([0, 1, 2, 3, 5, 8, 13]))
    src, src_lengths, tgt_in, _ = reverse_batch(torch.Generator().manual_seed(4), batch=5, min_len=1, max_len=6)
    with torch.inference_mode():
        encoded = model.encode(src, src_lengths)
        state = model.init_state(encoded)
        for t in range(tgt_in.size(1)):
            embedded = decoder.embedding(tgt_in[:, t]).to(next(model.parameters()).dtype)
            whole, whole_state, whole_weights = step(embedded, state, encoded)
            short, short_state, short_weights = step(embedded, state, encoded, vocab)
            assert short.shape == (len(vocab), src.size(0))
            if low:
                error = (short - whole[vocab.ids]).abs().max() / whole.std()
                assert float(error) < TOLERANCE[kernel.support.precision][1]
            else:
                torch.testing.assert_close(short, whole[vocab.ids], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(short_state.hidden, whole_state.hidden, rtol=0, atol=0)
            if whole_weights is not None:
                torch.testing.assert_close(short_weights, whole_weights, rtol=0, atol=0)
            state = whole_state


def test_amx_kernel_runs_many_rows_on_onednn_and_few_on_fbgemm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The AMX int8 step is chosen only where the CPU has AMX-INT8, but computes the same anywhere: both of its
    paths (every product on oneDNN, rows padded to a multiple or not; every product on fbgemm) are held to fp32
    as the int8 kernels are, and the choice follows the CPU's flags."""
    import model.kernels.int8 as int8

    if "int8" not in cpu_features().precisions():
        pytest.skip(f"this CPU has no int8: {cpu_features().describe()}")
    config = next(c for c in CONFIGS if c.cell == "gru" and c.attention == "bahdanau" and c.decoder_layers == 2)
    for min_rows in (1, 4, 10**6):  # oneDNN for every product (4: 5 and 7 rows padded to 8) / fbgemm for all
        monkeypatch.setattr(int8, "AMX_MIN_ROWS", min_rows)
        test_low_precision_step_kernel_is_close_to_fp32(int8.INT8_AMX_STEP, config)
    weight, bias, x = torch.randn(96, 48), torch.randn(96), torch.randn(40, 48)
    monkeypatch.setattr(int8, "AMX_MIN_ROWS", 32)
    padded = int8.amx_int8_linear(weight, bias)(x)  # 40 rows on oneDNN as 64, the last 24 zeros
    monkeypatch.setattr(int8, "AMX_MIN_ROWS", 1)
    torch.testing.assert_close(padded, int8.amx_int8_linear(weight, bias)(x), rtol=0, atol=1e-5)  # as 40 rows
    chosen = choose_kernel(config, "cpu", "int8").step
    assert chosen is (int8.INT8_AMX_STEP if "amx_int8" in cpu_features().flags else int8.INT8_STEP)
    assert not int8.INT8_AMX_STEP.support.covers(config, "cpu", "int8", cpu_flags=frozenset({"avx2"}))
    assert int8.INT8_AMX_STEP.support.covers(config, "cpu", "int8", cpu_flags=frozenset({"avx2", "amx_int8"}))
    assert torch.backends.quantized.engine == cpu_features().quantized_engine  # packing set it back


def test_activations_keep_to_7_bits_without_int8_dot_products() -> None:
    """Without VNNI or AMX, x86 int8 kernels sum pairs of u8 x s8 products in 16 bits: oneDNN's products then take
    7-bit activations, as fbgemm's always do (on an AVX2-only EPYC the AMX kernel's oneDNN path, run by the test
    above, was 0.0501 off fp32 in a state with 8-bit activations, past its 0.05)."""
    avx2 = dataclasses.replace(cpu_features(), flags=frozenset({"avx2", "fma"}))
    assert not avx2.int8_dot_products
    for flag in ("avx_vnni", "avx512_vnni", "amx_int8"):
        assert dataclasses.replace(avx2, flags=avx2.flags | {flag}).int8_dot_products


ENCODER_CONFIGS = [tiny_config(cell, "bahdanau", encoder_layers=layers, bidirectional=bi)
                   for cell, layers, bi in itertools.product(CELLS, (1, 2), (True, False))]


@pytest.mark.parametrize(("kernel", "config"), [
    pytest.param(k, c, id=f"{k.name}-{c.cell}-{c.encoder_layers}layer-{'bi' if c.bidirectional else 'uni'}")
    for k in ENCODER_KERNELS for c in ENCODER_CONFIGS
    if k is not REFERENCE_ENCODER and k.support.covers(c, "cpu", k.support.precision)])
def test_encoder_kernel_is_close_to_the_reference(kernel, config: ModelConfig) -> None:
    """Outputs and final states of the encoder on a padded batch, the kernel's against nn.GRU/LSTM's: equal up
    to int8 rounding (|error| within 3% of the outputs' range), padding still zero. (Not batch invariant:
    each product's input is quantized from the range of the whole batch, as in the int8 step.)"""
    available(kernel)
    torch.manual_seed(0)
    sizes = {"emb_size": 32, "readout_size": 32, "encoder_hidden": 48}
    model = Seq2Seq(ModelConfig(**{**config.to_dict(), **sizes})).eval()
    src, src_lengths, _, _ = reverse_batch(torch.Generator().manual_seed(5), batch=6, min_len=1, max_len=9)
    with torch.inference_mode():
        ref_outputs, ref_final = model.encoder(src, src_lengths)
        model.encoder.run_rnn = kernel.bind(model.encoder.rnn)
        outputs, final = model.encoder(src, src_lengths)
    scale = float(ref_outputs.abs().max())
    torch.testing.assert_close(outputs, ref_outputs, rtol=0.0, atol=0.03 * scale)
    torch.testing.assert_close(final, ref_final, rtol=0.0, atol=0.03 * scale)
    assert float((outputs - ref_outputs).abs().max()) > 0  # it did run the kernel, not the module
    padding = src == PAD_ID
    assert padding.any() and not outputs[padding].any()  # padded positions stay zero


def outputs_and_grads(model: Seq2Seq, recurrence: RecurrenceKernel, src, src_lengths, tgt_in) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    decoder = model.decoder
    encoded = model.encode(src, src_lengths)
    tops, contexts = recurrence.run(decoder, decoder.embedding(tgt_in), decoder.init_state(encoded), encoded)
    # A loss that weighs every output differently, so that every gradient path is exercised.
    weights_top = torch.linspace(-1, 1, tops.numel(), dtype=tops.dtype).view_as(tops)
    weights_ctx = torch.linspace(1, -2, contexts.numel(), dtype=tops.dtype).view_as(contexts)
    ((tops * weights_top).sum() + (contexts * weights_ctx).pow(2).sum()).backward()
    return [tops, contexts] + [p.grad for _, p in sorted(model.named_parameters())]


@pytest.mark.parametrize(("kernel", "config"), claimed(RECURRENCE_KERNELS))
def test_recurrence_kernel_matches_the_reference_with_every_gradient(kernel: RecurrenceKernel,
                                                                      config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(config).double()
    src, src_lengths, tgt_in, _ = reverse_batch(torch.Generator().manual_seed(1), batch=6, min_len=1, max_len=7)
    fast = outputs_and_grads(model, kernel, src, src_lengths, tgt_in)
    reference = outputs_and_grads(model, REFERENCE_RECURRENCE, src, src_lengths, tgt_in)
    names = ["tops", "contexts"] + [name for name, _ in sorted(model.named_parameters())]
    compared = []
    for name, a, b in zip(names, fast, reference, strict=True):
        if b is None and not name.startswith("decoder.readout"):
            raise AssertionError(f"{name} has no gradient")  # only the readout is outside the recurrence
        if b is None:
            assert a is None, name
            continue
        assert a.abs().max() > 0, name  # every output and gradient is exercised
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)
        compared.append(name)
    assert {"decoder.cells.0.weight_ih", "encoder.rnn.weight_hh_l0"} < set(compared)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_every_configuration_has_a_kernel_for_every_precision_this_cpu_has(config: ModelConfig) -> None:
    """fp32 always; int8 and bf16 where the CPU has them and a kernel claims the configuration, else a clear
    PrecisionError; the chosen step and recurrence claim what they are chosen for."""
    for precision in ("fp32", "int8", "bf16", "auto"):
        try:
            kernel = choose_kernel(config, "cpu", precision)
        except PrecisionError as exc:
            assert precision in ("int8", "bf16") and precision in str(exc)
            continue
        assert kernel.step.support.covers(config, "cpu", kernel.precision)
        assert kernel.recurrence.support.covers(config, "cpu", "fp32")
        assert kernel.precision in cpu_features().precisions()
    assert choose_kernel(config, "cpu", "auto").precision == "fp32"  # these test models are tiny
    with pytest.raises(PrecisionError, match="CPU"):
        choose_kernel(config, "cuda", "int8")
    with pytest.raises(PrecisionError, match="fp16"):
        choose_kernel(config, "cpu", "fp16")
    assert choose_kernel(config, "cuda", "fp32", autocast=True).recurrence.support.autocast  # mixed-precision training


def test_cpu_features_agree_with_torch_and_with_what_runs() -> None:
    features = cpu_features()
    assert features.capability == torch.backends.cpu.get_cpu_capability()
    if features.flags and features.x86:  # /proc/cpuinfo read: torch's dispatch level cannot exceed the flags
        assert features.capability != "AVX512" or "avx512f" in features.flags
        assert features.capability not in ("AVX2", "AVX512") or "avx2" in features.flags
    assert features.avx2 or not features.avx512 or not features.x86
    assert ("bf16" in features.precisions()) == bool({"avx512_bf16", "amx_bf16"} & features.flags)
    if "bf16" in features.precisions():
        assert torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if "int8" in features.precisions():  # the engine it names runs a quantized product
        from model.kernels.int8 import int8_linear

        weight, x = torch.randn(64, 48), torch.randn(5, 48)
        torch.testing.assert_close(int8_linear(weight, torch.ones(64))(x), x @ weight.t() + 1, rtol=0, atol=0.5)
    assert features.describe().startswith(features.machine)


@pytest.mark.parametrize("vocab", [10_000, 8000, 9973])  # chunks of 50, 64 and (a prime) 1
@pytest.mark.parametrize("layout", ["vocab-major", "row-major"])  # row-major: the low-precision steps' view
def test_vocabulary_selection_over_a_real_sized_vocabulary(vocab: int, layout: str) -> None:
    generator = torch.Generator().manual_seed(vocab)
    sentences, beams, count = 8, 5, 10
    logits = torch.randn(vocab, sentences * beams, generator=generator) * 4
    if layout == "row-major":
        logits = logits.t().contiguous().t()  # same values, (vocab, rows) as a view of (rows, vocab) memory
    tied = logits.clone()
    tied[7, 3] = tied[vocab - 1, 3] = tied[:, 3].max() + 1  # a tie for the best token: the first one wins
    assert torch.equal(argmax_over_vocab(tied, chunk_maxima(tied)), tied.argmax(0))
    assert int(argmax_over_vocab(tied, chunk_maxima(tied))[3]) == 7
    chunk_max = chunk_maxima(logits)
    assert chunk_max.shape == (vocab // chunk_size(vocab), sentences * beams)
    torch.testing.assert_close(log_normalizer(logits, chunk_max), logits.logsumexp(0), rtol=1e-5, atol=1e-5)
    assert torch.equal(argmax_over_vocab(logits, chunk_max), logits.argmax(0))
    one = tied[:, 3:4]  # one row (its own path): the first of the tied maxima
    assert argmax_over_vocab(one, chunk_maxima(one)).tolist() == [7]
    offsets = torch.randn(sentences * beams, generator=generator)
    scores, beam, token = top_candidates(logits, chunk_max, offsets, beams, count)
    # All continuations of a sentence's beams, column beam * vocab + token: (sentences, beams * vocab)
    every = (logits + offsets).view(vocab, sentences, beams).permute(1, 2, 0).reshape(sentences, -1)
    expected = every.topk(count, dim=1)
    torch.testing.assert_close(scores, expected.values)
    assert torch.equal(beam * vocab + token, expected.indices)
    assert torch.equal(every.gather(1, beam * vocab + token), scores)


@pytest.mark.parametrize("kernel", LOW_PRECISION_STEPS, ids=lambda k: k.name)
def test_search_runs_on_the_low_precision_kernels(kernel: StepKernel) -> None:
    """Search reads the low-precision steps' logits (a transposed view) as it reads fp32 ones: well-formed
    hypotheses, best first, and (int8) beam size 1 is still exactly greedy for one sentence. Not bf16: its
    products round to 8 significant bits, so exact ties between tokens are common, and greedy's argmax and
    beam's top-k may break them differently. Nor batch invariance for either: int8 quantizes each product's
    input with one scale for all rows, so a row's result depends on the other rows."""
    available(kernel)
    torch.manual_seed(0)
    config = tiny_config("gru", "bahdanau", src_vocab_size=500, tgt_vocab_size=500, emb_size=32, readout_size=32,
                         decoder_hidden=64, attention_size=48, tie_embeddings="none")
    model = Seq2Seq(config).eval()
    with torch.no_grad():
        model.decoder.output_projection.weight.mul_(8.0)
    src, lengths, _, _ = reverse_batch(torch.Generator().manual_seed(5), 16)
    search_config = SearchConfig(beam_size=1, max_len_b=6)
    fp32 = greedy_search(model, src, lengths, search_config)
    chosen = choose_kernel(config, "cpu", kernel.support.precision)
    assert chosen.step.support.precision == kernel.support.precision
    model.use_kernel(dataclasses.replace(chosen, step=kernel))  # this kernel, where the CPU would choose another
    low = greedy_search(model, src, lengths, search_config)
    assert sum(a[0].tokens[:1] == b[0].tokens[:1] for a, b in zip(fp32, low)) >= 14  # first steps: no drift yet
    for hyps, length in zip(low, lengths.tolist()):
        assert len(hyps[0].tokens) < length * 1.5 + 6 and -1e3 < hyps[0].log_prob < 0
    for row in range(4):
        one_src, one_length = src[row: row + 1, : int(lengths[row])], lengths[row: row + 1]
        greedy = greedy_search(model, one_src, one_length, search_config)[0][0]
        beam = beam_search(model, one_src, one_length, SearchConfig(beam_size=1, max_len_b=6))[0][0]
        if kernel.support.precision == "int8":
            assert greedy.tokens == beam.tokens and greedy.log_prob == pytest.approx(beam.log_prob, abs=1e-5)
        four = beam_search(model, one_src, one_length, SearchConfig(beam_size=4, n_best=4, max_len_b=6))[0]
        assert [h.score for h in four] == sorted((h.score for h in four), reverse=True)
