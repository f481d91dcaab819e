"""Reranking in the service: a model whose reverse and right-to-left models are loaded too reranks its beams with
them (the weights its config.json gives, or the request's), and says so in /languages; a right-to-left model is
not served as a pair of its own. Against a real server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.bench_serve import running_server
from model.translator import Translator
from tests.app.conftest import SERVER_ENV, wait_ready

TEXTS = ["three one four", "nine nine two six", "five eight"]


@pytest.fixture(scope="module")
def models_dir(tiny_model_dir: Path, tiny_reverse_model_dir: Path, tiny_right_to_left_model_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rerank-models")
    for name, source in {"tiny-en-de": tiny_model_dir, "tiny-de-en": tiny_reverse_model_dir,
                         "tiny-en-de-r2l": tiny_right_to_left_model_dir}.items():
        shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("checkpoints"))
    config = json.loads((root / "tiny-en-de" / "config.json").read_text())
    config["decoding"] = {**config.get("decoding", {}), "beam_size": 4, "reverse_weight": 2.0,
                          "right_to_left_weight": 1.0}
    (root / "tiny-en-de" / "config.json").write_text(json.dumps(config))
    return root


@pytest.fixture(scope="module")
def url(models_dir: Path) -> Iterator[str]:
    with running_server(models_dir, {**SERVER_ENV, "RNNMT_KEYS_DB": str(models_dir / "keys.sqlite")}) as base:
        wait_ready(base)
        yield base


def test_languages_name_the_reranking_model(url: str) -> None:
    listed = httpx.get(f"{url}/languages").json()["pairs"]
    pairs = {(p["source"], p["target"]): p for p in listed}
    assert len(listed) == 2 and pairs[("en", "de")]["model"] == "tiny-en-de"  # the right-to-left model reranks only
    assert pairs[("en", "de")]["reranks_with"] == ["tiny-de-en", "tiny-en-de-r2l"]
    assert pairs[("de", "en")]["reranks_with"] == []  # loaded both ways, but its settings give no weight
    assert pairs[("en", "de")]["shortlist"] is False  # no shortlist.safetensors in these folders


@pytest.mark.parametrize("weights", [{}, {"reverse_weight": 0.0, "right_to_left_weight": 0.0},
                                     {"reverse_weight": 4.0}, {"reverse_weight": 0.0, "right_to_left_weight": 10.0}])
def test_the_service_translates_as_the_reranking_translator_does(url: str, models_dir: Path,
                                                                 weights: dict[str, float]) -> None:
    translator = Translator.from_folder(str(models_dir / "tiny-en-de"), device="cpu")
    translator.use_reverse(Translator.from_folder(str(models_dir / "tiny-de-en"), device="cpu"))
    translator.use_right_to_left(Translator.from_folder(str(models_dir / "tiny-en-de-r2l"), device="cpu"))
    config = translator.defaults.changed(n_best=4, **weights)  # the whole beam, in its order
    expected = [[h.text for h in t.hypotheses] for t in translator.translate(TEXTS, config)]
    body = {"text": TEXTS, "source": "en", "target": "de", "n_best": 4, **weights}
    response = httpx.post(f"{url}/translate", json=body, timeout=60)
    assert response.status_code == 200, response.text
    got = [[a["text"] for a in item["alternatives"]] for item in response.json()["translations"]]
    assert got == expected
    off = config.changed(reverse_weight=0.0, right_to_left_weight=0.0)
    plain = [[h.text for h in t.hypotheses] for t in translator.translate(TEXTS, off)]
    if config == off:  # off: the plain beam's order
        assert got == plain
    else:  # on (the model's weights, or the request's): some sentence's beam comes in another order
        assert got != plain


@pytest.mark.parametrize("field", ["reverse_weight", "right_to_left_weight"])
def test_a_weight_out_of_range_is_a_422(url: str, field: str) -> None:
    response = httpx.post(f"{url}/translate", json={"text": "one", "source": "en", "target": "de", field: -1},
                          timeout=30)
    assert response.status_code == 422 and field in response.text
