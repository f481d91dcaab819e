"""Shared fixtures: a tiny en->de model folder trained for real on a synthetic task (number words,
English in, German reversed out), small enough to train in seconds on a CPU."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DE = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]


def synthetic_corpus(folder: Path, n: int, seed: int) -> tuple[Path, Path]:
    """n pairs: 'three one four' -> 'vier eins drei'."""
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(2, 6))]
        src.append(" ".join(EN[d] for d in digits))
        tgt.append(" ".join(DE[d] for d in reversed(digits)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "src.txt").write_text("\n".join(src) + "\n", encoding="utf-8")
    (folder / "tgt.txt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return folder / "src.txt", folder / "tgt.txt"


def tiny_overrides(data: Path, prepared: Path, steps: int = 400) -> list[str]:
    src, tgt = synthetic_corpus(data, 2000, seed=1)
    return [
        f"data.train_src={src}", f"data.train_tgt={tgt}", f"data.valid_src={src}", f"data.valid_tgt={tgt}",
        "data.dataset=null", f"data.prepared_dir={prepared}", "data.vocab_size=48", "data.pair=en-de",
        "model.emb_size=32", "model.encoder_hidden=32", "model.decoder_hidden=48", "model.attention_size=32",
        "model.readout_size=32", "model.dropout=0.0", "model.emb_dropout=0.0",
        "train.batch_tokens=400", f"train.max_steps={steps}", f"train.valid_every={steps}", "train.lr=0.01",
        "train.threads=1", "train.label_smoothing=0.0", "decode.beam_size=3",
    ]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny en->de model folder (GRU, Bahdanau attention)."""
    from training.config import load_config
    from training.trainer import train

    root = tmp_path_factory.mktemp("tiny")
    config = load_config(None, tiny_overrides(root / "data", root / "prepared"))
    torch.manual_seed(0)
    train(config, root / "model", device="cpu")
    return root / "model"


@pytest.fixture(scope="session")
def tiny_reverse_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny task the other way round: a de->en model folder trained on the same pairs swapped (the reverse
    model that reranks tiny_model_dir's beams)."""
    from training.config import load_config
    from training.trainer import train

    root = tmp_path_factory.mktemp("tiny-reverse")
    swap = {"data.train_src": "data.train_tgt", "data.train_tgt": "data.train_src",
            "data.valid_src": "data.valid_tgt", "data.valid_tgt": "data.valid_src", "data.pair": "data.pair"}
    overrides = []
    for item in tiny_overrides(root / "data", root / "prepared"):
        key, value = item.split("=", 1)
        overrides.append(f"{swap[key]}={'de-en' if key == 'data.pair' else value}" if key in swap else item)
    torch.manual_seed(0)
    train(load_config(None, overrides), root / "model", device="cpu")
    return root / "model"


@pytest.fixture(scope="session")
def tiny_right_to_left_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny en->de task learnt right to left (model.right_to_left): the second opinion that reranks
    tiny_model_dir's beams from the other end."""
    from training.config import load_config
    from training.trainer import train

    root = tmp_path_factory.mktemp("tiny-right-to-left")
    torch.manual_seed(0)
    # 200 steps: written last to first, the reversed task is monotone and learnt in half the steps
    overrides = [*tiny_overrides(root / "data", root / "prepared", steps=200), "model.right_to_left=true"]
    train(load_config(None, overrides), root / "model", device="cpu")
    return root / "model"
