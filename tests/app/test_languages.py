"""Pairs through English and language detection against a real server.

The models folder holds the tiny en->de model and a copy of it labelled fr->en (the same weights: what it
outputs for French does not matter here, only the route). So en->de is direct, fr->en direct, fr->de goes
through English, and the detector chooses between English and French.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.bench_serve import running_server
from tests.app.conftest import SERVER_ENV, wait_ready

FRENCH = "Un homme fait du vélo dans la rue avec son chien."
ENGLISH = "one two three"


@pytest.fixture(scope="module")
def pivot_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("pivot-models")
    for name, (source, target) in {"tiny-en-de": ("en", "de"), "tiny-fr-en": ("fr", "en")}.items():
        folder = root / name
        shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("checkpoints"))
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "source_lang": source, "target_lang": target}))
    env = {**SERVER_ENV, "RNNMT_KEYS_DB": str(root / "keys.sqlite")}
    with running_server(root, env) as url:
        wait_ready(url)
        yield url


def test_languages_list_pivoted_pairs(pivot_url: str) -> None:
    pairs = {(p["source"], p["target"]): p for p in httpx.get(f"{pivot_url}/languages").json()["pairs"]}
    assert set(pairs) == {("en", "de"), ("fr", "en"), ("fr", "de")}
    assert pairs[("fr", "de")]["pivot"] == "en" and pairs[("fr", "de")]["models"] == ["tiny-fr-en", "tiny-en-de"]
    assert pairs[("en", "de")]["pivot"] is None
    lt = {x["code"]: x["targets"] for x in httpx.get(f"{pivot_url}/libretranslate/languages").json()}
    assert lt == {"en": ["de"], "fr": ["de", "en"]}


def test_pivot_translation_feeds_the_first_legs_best_into_the_second(pivot_url: str) -> None:
    with httpx.Client(base_url=pivot_url, timeout=60) as http:
        body = {"text": [ENGLISH, "five six. seven"], "source": "fr", "target": "de", "beam_size": 2,
                "return_attention": True}
        pivoted = http.post("/translate", json=body).json()
        first = http.post("/translate", json={**body, "target": "en"}).json()
        for item, step in zip(pivoted["translations"], first["translations"]):
            assert item["models"] == ["tiny-fr-en", "tiny-en-de"]
            assert item["pivot"]["language"] == "en" and item["pivot"]["text"] == step["text"]
            assert item["pivot"]["attention"] is not None and item["alternatives"][0]["attention"] is not None
            second = http.post("/translate", json={**body, "text": step["text"], "source": "en"}).json()
            assert item["text"] == second["translations"][0]["text"]
        assert pivoted["model"]["name"] == "tiny-en-de"
        lt = http.post("/libretranslate/translate", json={"q": ENGLISH, "source": "fr", "target": "de"})
        assert lt.status_code == 200 and lt.json()["translatedText"] == pivoted["translations"][0]["text"]


def test_auto_detects_each_text_and_routes_it(pivot_url: str) -> None:
    with httpx.Client(base_url=pivot_url, timeout=60) as http:
        answer = http.post("/translate", json={"text": [FRENCH, "A man rides a bicycle down the street."],
                                               "source": "auto", "target": "de", "beam_size": 1}).json()
        french, english = answer["translations"]
        assert french["detected_language"]["language"] == "fr" and french["models"] == ["tiny-fr-en", "tiny-en-de"]
        assert english["detected_language"]["language"] == "en" and english["models"] == ["tiny-en-de"]
        for item in (french, english):
            assert 0.5 < item["detected_language"]["confidence"] <= 1.0 and item["detected_language"]["reliable"]
        # A text already in the target language comes back unchanged, with no model, beside the others translated;
        # a request of such texts alone names no model.
        english = "A man rides a bicycle down the street."
        mixed = http.post("/translate", json={"text": [FRENCH, english], "source": "auto", "target": "en",
                                              "beam_size": 1}).json()
        translated, kept = mixed["translations"]
        assert translated["models"] == ["tiny-fr-en"] and translated["text"] != FRENCH
        assert kept["text"] == english and kept["models"] == [] and kept["detected_language"]["language"] == "en"
        assert kept["alternatives"] == [{"text": english, "score": None, "attention": None}]
        assert mixed["model"]["name"] == "tiny-fr-en"
        same = http.post("/translate", json={"text": english, "source": "auto", "target": "en"})
        assert same.status_code == 200 and same.json()["model"] is None
        assert same.json()["translations"][0]["text"] == english
        lt = http.post("/libretranslate/translate", json={"q": [english, FRENCH], "source": "auto", "target": "en"})
        assert lt.status_code == 200 and lt.json()["translatedText"][0] == english
        assert [d["language"] for d in lt.json()["detectedLanguage"]] == ["en", "fr"]
        # A pair no model serves, even through English, is still a clear 400 that names the detected language.
        none = http.post("/translate", json={"text": english, "source": "auto", "target": "fr"})
        assert none.status_code == 400 and none.json()["error"]["code"] == "unsupported_pair"
        assert "detected as English ('en')" in none.json()["error"]["message"]
        html = http.post("/translate", json={"text": f"<p>{FRENCH.replace('vélo', '<b>vélo</b>')}</p>",
                                             "source": "auto", "target": "de", "format": "html"}).json()
        assert html["translations"][0]["detected_language"]["language"] == "fr"  # the text's, not the tags'
        digits = http.post("/translate", json={"text": "12 345 !", "source": "auto", "target": "de"})
        assert digits.status_code == 400 and digits.json()["error"]["code"] == "language_not_detected"


def test_detect_on_both_faces(pivot_url: str) -> None:
    with httpx.Client(base_url=pivot_url, timeout=60) as http:
        native = http.post("/detect", json={"text": [FRENCH, "Hi"]}).json()["detections"]
        assert native[0][0]["language"] == "fr" and native[0][0]["reliable"]
        assert [d["confidence"] for d in native[0]] == sorted((d["confidence"] for d in native[0]), reverse=True)
        assert all(not d["reliable"] for d in native[1])  # two letters: never trusted
        lt = http.post("/libretranslate/detect", data={"q": FRENCH}).json()
        assert lt[0]["language"] == "fr" and 50.0 < lt[0]["confidence"] <= 100.0 and set(lt[0]) == {
            "language", "confidence"}
        auto = http.post("/libretranslate/translate", json={"q": [FRENCH, ENGLISH], "source": "auto",
                                                            "target": "de"}).json()
        assert [d["language"] for d in auto["detectedLanguage"]] == ["fr", "en"]
        assert all(0.0 < d["confidence"] <= 100.0 for d in auto["detectedLanguage"])
