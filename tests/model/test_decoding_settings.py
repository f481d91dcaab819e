"""Decoding settings: a model folder's config.json `decoding` section is the model's defaults (read in one
place, ModelBundle.decoding), a broken one fails the load, and text translated through `encode` +
`translate_encoded` (the service's path) is the text `translate` gives (the CLI's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model.checkpoint import CONFIG, load_model_folder
from model.errors import ModelLoadError
from model.search import SearchConfig
from model.translator import Translator


def with_decoding(model_dir: Path, folder: Path, decoding: object) -> Path:
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    config["decoding"] = decoding
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_the_model_folder_sets_the_defaults(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = with_decoding(tiny_model_dir, tmp_path / "m", {"beam_size": 3, "max_len_a": 0, "max_len_b": 4,
                                                                "tuned_on": "val"})
    translator = Translator.from_folder(str(folder), device="cpu")
    assert translator.defaults == SearchConfig(beam_size=3, max_len_a=0, max_len_b=4)  # the rest: SearchConfig's
    (translation,) = translator.translate(["one two three four five six seven"])
    assert len(translation.hypotheses[0].tgt_pieces) < 4  # at most 4 pieces, EOS included
    assert translator.defaults.changed(beam_size=1, n_best=None).beam_size == 1


@pytest.mark.parametrize("decoding", [{"beam_size": 0}, {"n_best": 2, "beam_size": 1}, ["beam_size", 5]])
def test_a_broken_decoding_section_fails_the_load(tiny_model_dir: Path, tmp_path: Path, decoding: object) -> None:
    folder = with_decoding(tiny_model_dir, tmp_path / "m", decoding)
    with pytest.raises(ModelLoadError, match="decoding section"):
        load_model_folder(folder)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_encoded_sentences_translate_as_texts_do(tiny_model_dir: Path, beam_size: int) -> None:
    translator = Translator.from_folder(str(tiny_model_dir), device="cpu", batch_tokens=12, max_batch_size=2)
    texts = ["one two", "", "three  four five six", "seven", "eight nine one two three", "  "]
    config = translator.defaults.changed(beam_size=beam_size, n_best=beam_size)
    sources = translator.encode(texts)
    assert [translator.count_tokens(s) for s in sources] == [max(len(s.ids), 1) for s in sources]
    direct = translator.translate(texts, config)
    for text, encoded, alone in zip(texts, translator.translate_encoded(sources, config), direct):
        assert encoded.source == alone.source == text
        assert [h.text for h in encoded.hypotheses] == [h.text for h in alone.hypotheses]
        one = translator.translate([text], config)[0]  # small batches (2 rows) against one at a time
        assert [h.text for h in one.hypotheses] == [h.text for h in alone.hypotheses]
