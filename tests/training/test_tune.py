"""`rnnmt tune`: decoding defaults chosen on dev sets, stored in the model folder, never tuned on a test set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model.checkpoint import load_model_folder
from model.errors import InputError
from model.translator import Translator
from tests.training.test_cli_errors import assert_user_error, rnnmt
from training.data import read_lines
from training.evaluate import corpus_scores
from training.tune import DevSet, check_dev_names, tune_decoding, write_decoding


def test_tune_picks_the_best_setting_and_the_folder_serves_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    sources = read_lines(tiny_model_dir.parent / "data" / "src.txt")[:40]
    references = read_lines(tiny_model_dir.parent / "data" / "tgt.txt")[:40]
    translator = Translator.from_folder(folder)
    result = tune_decoding(translator, [DevSet("mine:dev", sources, references)], [1, 3], [0.5, 1.0])
    assert [(r["beam_size"], r["length_penalty"]) for r in result["grid"]] == [(1, 0.5), (1, 1.0), (3, 0.5), (3, 1.0)]
    best = max(result["grid"], key=lambda r: r["mean_bleu"])
    assert best["mean_bleu"] == max(r["bleu"]["mine:dev"] for r in result["grid"])
    write_decoding(folder, result)
    decoding = load_model_folder(folder).decoding
    assert (decoding.beam_size, decoding.length_penalty) == (result["best"]["beam_size"],
                                                             result["best"]["length_penalty"])
    stored = json.loads((folder / "config.json").read_text())
    assert stored["tuning"]["dev_sets"] == ["mine:dev"] and len(stored["tuning"]["grid"]) == 4


def test_tuning_on_a_test_set_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(InputError, match="dev sets only"):
        check_dev_names(["multi30k:val", "ding:test"])
    result = rnnmt("tune", "--model", str(tiny_model_dir), "--testset", "multi30k:test_2016_flickr")
    assert_user_error(result, "dev sets only", "multi30k:test_2016_flickr")
    assert "tuning" not in json.loads((tiny_model_dir / "config.json").read_text())


def test_tune_reranks_each_beam_with_every_reverse_weight(tiny_model_dir: Path, tiny_reverse_model_dir: Path) -> None:
    """tune scores each beam once with the reverse model and reranks it per weight, offline: each row must be
    what translating with that setting gives."""
    sources = read_lines(tiny_model_dir.parent / "data" / "src.txt")[:30]
    references = read_lines(tiny_model_dir.parent / "data" / "tgt.txt")[:30]
    translator = Translator.from_folder(str(tiny_model_dir))
    with pytest.raises(InputError, match="reverse model"):
        tune_decoding(translator, [DevSet("mine:dev", sources, references)], [3], [1.0], [0.0, 1.0])
    translator.use_reverse(Translator.from_folder(str(tiny_reverse_model_dir)))
    result = tune_decoding(translator, [DevSet("mine:dev", sources, references)], [1, 3], [1.0], [0.0, 1.0, 4.0])
    assert [(r["beam_size"], r["reverse_weight"]) for r in result["grid"]] == [(1, 0.0), (3, 0.0), (3, 1.0), (3, 4.0)]
    for row in result["grid"]:
        config = translator.defaults.changed(beam_size=row["beam_size"], length_penalty=1.0,
                                             reverse_weight=row["reverse_weight"], n_best=1)
        online = corpus_scores([t.text for t in translator.translate(sources, config)], references).bleu
        assert row["bleu"]["mine:dev"] == online
    assert set(result["best"]) == {"beam_size", "length_penalty", "reverse_weight", "right_to_left_weight"}


def test_tune_reranks_with_every_pair_of_weights(tiny_model_dir: Path, tiny_reverse_model_dir: Path,
                                                 tiny_right_to_left_model_dir: Path) -> None:
    """With both second opinions, every (reverse weight, right-to-left weight) row is what translating with it
    gives."""
    sources = read_lines(tiny_model_dir.parent / "data" / "src.txt")[:30]
    references = read_lines(tiny_model_dir.parent / "data" / "tgt.txt")[:30]
    translator = Translator.from_folder(str(tiny_model_dir))
    translator.use_reverse(Translator.from_folder(str(tiny_reverse_model_dir)))
    with pytest.raises(InputError, match="right-to-left model"):
        tune_decoding(translator, [DevSet("mine:dev", sources, references)], [3], [1.0], [0.0], [1.0])
    translator.use_right_to_left(Translator.from_folder(str(tiny_right_to_left_model_dir)))
    result = tune_decoding(translator, [DevSet("mine:dev", sources, references)], [3], [0.6], [0.0, 2.0],
                           [0.0, 3.0])
    assert [(r["reverse_weight"], r["right_to_left_weight"]) for r in result["grid"]] == [
        (0.0, 0.0), (0.0, 3.0), (2.0, 0.0), (2.0, 3.0)]
    for row in result["grid"]:
        config = translator.defaults.changed(beam_size=3, length_penalty=0.6, n_best=1,
                                             reverse_weight=row["reverse_weight"],
                                             right_to_left_weight=row["right_to_left_weight"])
        online = corpus_scores([t.text for t in translator.translate(sources, config)], references).bleu
        assert row["bleu"]["mine:dev"] == online
