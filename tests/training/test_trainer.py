"""Training: exact resume, the tokenizer round trip, cleaning (atomic writes: tests/model/test_atomic.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_model_folder
from model.tokenizer import Tokenizer
from tests.conftest import tiny_overrides
from training.config import load_config
from training.data import clean_pairs, token_batches
from training.trainer import Trainer, train


def test_resume_gives_the_same_weights(tmp_path: Path) -> None:
    base = tiny_overrides(tmp_path / "data", tmp_path / "prepared", steps=40)
    overrides = [*base, "train.valid_every=20", "model.dropout=0.3", "model.emb_dropout=0.1"]  # dropout uses RNG
    config = load_config(None, overrides)
    train(config, tmp_path / "straight", device="cpu")
    train(config, tmp_path / "resumed", device="cpu", max_steps=25)  # stops between validations
    train(config, tmp_path / "resumed", device="cpu", resume=True)
    straight = load_file(str(tmp_path / "straight" / "checkpoints" / "last.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "checkpoints" / "last.safetensors"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        if name.startswith(("model.", "optim.")):
            assert straight[name].equal(resumed[name]), name
    bundle = load_model_folder(tmp_path / "resumed")
    assert bundle.source_lang == "en" and bundle.target_lang == "de"
    assert (tmp_path / "resumed" / "metrics.json").is_file()


def test_sentencepiece_round_trip(tiny_model_dir: Path) -> None:
    tokenizer = Tokenizer(tiny_model_dir / "spm.model")
    text = "three one four nine"
    ids = tokenizer.encode([text])
    assert all(isinstance(i, int) for i in ids[0])
    assert tokenizer.decode(ids) == [text]


def test_cleaning_reports_what_it_dropped() -> None:
    src = ["a b", "", "x " * 100, "one", "ok then"]
    tgt = ["c d", "e", "y", "one two three four five six", "fine"]
    kept_src, kept_tgt, report = clean_pairs(src, tgt, max_words=80, max_ratio=3.0)
    assert kept_src == ["a b", "ok then"] and kept_tgt == ["c d", "fine"]
    assert report.dropped == {"empty": 1, "too_long": 1, "length_ratio": 1}


def test_token_batches_respect_the_budget_and_cover_everything() -> None:
    src_lens = [3, 10, 7, 2, 9, 4] * 20
    tgt_lens = [4, 9, 8, 2, 10, 5] * 20
    batches = [b.tolist() for b in token_batches(src_lens, tgt_lens, batch_tokens=60, seed=1, epoch=0)]
    assert sorted(i for b in batches for i in b) == list(range(120))
    for b in batches:
        assert len(b) * max(max(src_lens[i], tgt_lens[i]) + 1 for i in b) <= 60 or len(b) == 1
    def again(epoch: int) -> list[list[int]]:
        return [b.tolist() for b in token_batches(src_lens, tgt_lens, batch_tokens=60, seed=1, epoch=epoch)]

    assert batches == again(0)
    assert batches != again(1)


def test_init_from_starts_a_new_run_from_a_model_folder_with_its_tokenizer(tmp_path: Path,
                                                                           tiny_model_dir: Path) -> None:
    from model.errors import ConfigError
    from tests.conftest import synthetic_corpus

    src, tgt = synthetic_corpus(tmp_path / "other", 500, seed=7)  # other data: SentencePiece would differ
    base = tiny_overrides(tmp_path / "data", tmp_path / "prepared", steps=2)
    overrides = [*base, f"data.train_src={src}", f"data.train_tgt={tgt}", f"train.init_from={tiny_model_dir}",
                 "train.lr=1e-12"]  # two steps that barely move: the run starts where the folder ended
    config = load_config(None, overrides)
    assert config.data.spm_from == str(tiny_model_dir)  # init_from brings its tokenizer
    train(config, tmp_path / "tuned", device="cpu")
    assert (tmp_path / "prepared" / "spm.model").read_bytes() == (tiny_model_dir / "spm.model").read_bytes()
    start = load_model_folder(tiny_model_dir).model.state_dict()
    tuned = load_model_folder(tmp_path / "tuned").model.state_dict()
    assert all(torch.allclose(start[k], tuned[k], atol=1e-6) for k in start)

    wider = load_config(None, [*overrides, "data.prepared_dir=" + str(tmp_path / "p2"), "model.decoder_hidden=64"])
    with pytest.raises(ConfigError, match="architecture differs"):
        train(wider, tmp_path / "wider", device="cpu")


def test_the_trainer_translates_without_dropout(tmp_path: Path) -> None:
    """Validation and the export's choice between the best checkpoint and the average of the kept ones decode with
    the model in eval mode, whatever mode training left it in: a run resumed at its last step (`--resume` after a
    kill) used to score the average with dropout on and keep the single checkpoint (greedy val BLEU 8.78 for the
    average against 10.17, where the same average decoded without dropout was the better one)."""
    overrides = [*tiny_overrides(tmp_path / "data", tmp_path / "prepared", steps=4), "model.dropout=0.5",
                 "model.emb_dropout=0.5"]
    trainer = Trainer(load_config(None, overrides), tmp_path / "run", "cpu", 4)
    trainer.setup(resume=False)
    texts = trainer.valid_text[0][:30]
    trainer.model.train()
    first = [t.text for t in trainer.translator().translate(texts)]
    assert not trainer.model.training
    trainer.model.train()
    assert [t.text for t in trainer.translator().translate(texts)] == first  # with dropout on they would differ
