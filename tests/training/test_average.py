"""`rnnmt average`: model folders averaged parameter by parameter; unlike models refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_model_folder, save_model_folder
from model.errors import InputError
from tests.training.test_cli_errors import assert_user_error, rnnmt
from training.average import average_folders
from training.prepare import DataConfig, train_sentencepiece


def shifted_copy(tiny_model_dir: Path, out: Path, shift: float) -> Path:
    bundle = load_model_folder(tiny_model_dir)
    with torch.no_grad():
        for parameter in bundle.model.parameters():
            parameter.add_(shift)
    meta = {"source_lang": "en", "target_lang": "de"}
    return save_model_folder(out, bundle.model, meta, tiny_model_dir / "spm.model", tiny_model_dir / "spm.model")


def test_the_average_is_the_mean_of_the_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    up, down = shifted_copy(tiny_model_dir, tmp_path / "up", 0.5), shifted_copy(tiny_model_dir, tmp_path / "down", -0.5)
    out = average_folders([up, down, tiny_model_dir], tmp_path / "mean")
    original = load_model_folder(tiny_model_dir).model.state_dict()
    averaged = load_model_folder(out).model.state_dict()
    assert all(torch.allclose(averaged[k], original[k], atol=1e-6) for k in original)
    config = json.loads((out / "config.json").read_text())
    assert config["averaged_from"] == [str(up), str(down), str(tiny_model_dir)]
    assert (out / "spm.model").read_bytes() == (tiny_model_dir / "spm.model").read_bytes()


def test_unlike_models_are_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(InputError, match="at least two"):
        average_folders([tiny_model_dir], tmp_path / "one")
    other = shifted_copy(tiny_model_dir, tmp_path / "other", 0.0)
    data = tiny_model_dir.parent / "data"
    lines = (data / "src.txt").read_text().splitlines() + (data / "tgt.txt").read_text().splitlines()
    vocab = load_model_folder(tiny_model_dir).src_tokenizer.vocab_size
    train_sentencepiece(lines, tmp_path / "spm", DataConfig(vocab_size=vocab, model_type="bpe"))  # other pieces
    (other / "spm.model").write_bytes((tmp_path / "spm.model").read_bytes())
    result = rnnmt("average", str(tiny_model_dir), str(other), "--out", str(tmp_path / "mixed"))
    assert_user_error(result, "another SentencePiece model")
    assert not (tmp_path / "mixed").exists()


def test_the_kept_checkpoints_of_runs_average_with_equal_weight(tmp_path: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    kept = sorted((tiny_model_dir / "checkpoints").glob("best-step*.safetensors"))
    assert kept
    out = average_folders([tiny_model_dir], tmp_path / "mean", checkpoints=True)
    files = [load_file(str(path)) for path in kept]
    averaged = load_model_folder(out).model.state_dict()
    for name in files[0]:
        torch.testing.assert_close(averaged[name], sum(f[name].double() for f in files).float() / len(files))
    assert json.loads((out / "config.json").read_text())["averaged_from"] == [str(p) for p in kept]
