"""Loading a model folder: weights copied exactly (fp16 files included), and a model loaded to decode in int8
holds no fp32 copy of the weights its step keeps packed, yet translates exactly as the full model does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import load_model_folder, save_model_folder
from model.cpu_features import cpu_features
from model.kernels import choose_kernel
from model.search import SearchConfig, beam_search, greedy_search
from model.seq2seq import Seq2Seq
from tests.model.test_seq2seq import reverse_batch

needs_int8 = pytest.mark.skipif("int8" not in cpu_features().precisions(), reason="this CPU has no int8 kernels")


def packed_weights(model: Seq2Seq) -> dict[str, torch.Tensor]:
    """The weights the int8 kernels keep in their own form, by name: what the row-major step packs of the
    decoder, and the encoder's recurrent network (model/kernels/encoder.py)."""
    names = ("decoder.cells.", "decoder.readout.", "decoder.attention.query_layer.", "encoder.rnn.")
    return {name: weight for name, weight in model.named_parameters() if name.startswith(names)}


@needs_int8
def test_int8_load_keeps_no_fp32_copy_of_the_packed_weights(tiny_model_dir: Path) -> None:
    full = load_model_folder(tiny_model_dir, "cpu", "fp32").model
    int8 = load_model_folder(tiny_model_dir, "cpu", "int8").model
    assert int8.kernel.precision == "int8"
    released = packed_weights(int8)
    assert released and all(weight.is_meta for weight in released.values())
    assert all(not weight.is_meta for weight in packed_weights(full).values())
    # What the encoder and the step still read stays, with its values.
    kept = {name: weight for name, weight in int8.named_parameters() if not weight.is_meta}
    assert "tgt_embedding.weight" in kept and "decoder.attention.key_layer.weight" in kept
    full_weights = dict(full.named_parameters())
    assert all(torch.equal(weight, full_weights[name]) for name, weight in kept.items())
    # Shapes survive: /languages reports the same parameter count.
    assert int8.num_parameters() == full.num_parameters()
    assert {n: w.shape for n, w in int8.named_parameters()} == {n: w.shape for n, w in full.named_parameters()}


@pytest.fixture(scope="module")
def fp16_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported in fp16, as the released models are."""
    bundle = load_model_folder(tiny_model_dir)
    spm = tiny_model_dir / "spm.model"
    return save_model_folder(tmp_path_factory.mktemp("fp16") / "model", bundle.model,
                             {"source_lang": "en", "target_lang": "de"}, spm, spm, fp16=True)


@needs_int8
@pytest.mark.parametrize("export", ["fp32", "fp16"])
def test_the_released_int8_model_translates_as_the_full_one(tiny_model_dir: Path, fp16_model_dir: Path,
                                                            export: str) -> None:
    """Releasing changes nothing the step computes: outputs identical, token for token and score for score.
    An fp16 export's tied embedding is then an fp16 table whose lookups give the same fp32 values."""
    folder = fp16_model_dir if export == "fp16" else tiny_model_dir
    full = load_model_folder(folder, "cpu", "fp32").model
    full.use_kernel(choose_kernel(full.config, "cpu", "int8"))  # bound the same way, nothing released
    int8 = load_model_folder(folder, "cpu", "int8").model
    tied = int8.decoder.output_projection.weight is int8.tgt_embedding.weight
    assert tied == (int8.config.tie_embeddings != "none")
    assert int8.tgt_embedding.weight.dtype == (torch.float16 if export == "fp16" and tied else torch.float32)
    assert int8.num_parameters() == full.num_parameters()
    src, lengths, _, _ = reverse_batch(torch.Generator().manual_seed(7), 12)
    with torch.inference_mode():
        assert torch.equal(int8.tgt_embedding(src), full.tgt_embedding(src))
        torch.testing.assert_close(int8.encode(src, lengths).outputs, full.encode(src, lengths).outputs,
                                   rtol=0, atol=0)
    for search, config in ((greedy_search, SearchConfig(beam_size=1)), (beam_search, SearchConfig(beam_size=3))):
        expected, found = search(full, src, lengths, config), search(int8, src, lengths, config)
        assert [[(h.tokens, h.log_prob, h.score) for h in hyps] for hyps in found] == \
               [[(h.tokens, h.log_prob, h.score) for h in hyps] for hyps in expected]


def test_weights_load_exactly_and_a_joint_vocabulary_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Each tensor is copied into its parameter (fp16 -> fp32 by the copy): the values of an fp16 export are
    the fp16 values, those of an fp32 one the exact weights; tied weights stay tied."""
    config = load_model_folder(tiny_model_dir).model.config
    torch.manual_seed(3)
    model = Seq2Seq(config).eval()
    spm = tiny_model_dir / "spm.model"
    assert spm.exists()
    for fp16 in (False, True):
        folder = save_model_folder(tmp_path / f"fp16-{fp16}", model, {"source_lang": "en", "target_lang": "de"},
                                   spm, spm, fp16=fp16)
        bundle = load_model_folder(folder)
        assert bundle.src_tokenizer is bundle.tgt_tokenizer  # one SentencePiece model in memory
        loaded = dict(bundle.model.named_parameters())
        for name, weight in model.named_parameters():
            expected = weight.detach().half().float() if fp16 else weight.detach()
            assert loaded[name].dtype == torch.float32 and torch.equal(loaded[name], expected), name
        if config.tie_embeddings != "none":
            assert bundle.model.decoder.output_projection.weight is bundle.model.tgt_embedding.weight
