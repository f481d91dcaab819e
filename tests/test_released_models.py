"""The shipped models: they load, their files match the checksums in their cards, and they translate
simple sentences (written for this test, not taken from any data set) into the right language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.translator import Translator
from training.card import checksums

RELEASED = Path(__file__).resolve().parents[1] / "released-models"
SHIPPED = ["everyday-en-de", "everyday-de-en", "multi30k-en-fr", "multi30k-fr-en", "multi30k-en-cs", "multi30k-cs-en",
           "everyday-en-de-r2l", "everyday-de-en-r2l"]  # the right-to-left ones rerank, and translate on their own too

SENTENCES = {
    "en": ["A dog runs across the green grass.", "Two children are playing with a red ball.",
           "A woman in a blue dress is sitting on a bench.", "The man is riding a bicycle down the street."],
    "de": ["Ein Hund rennt über das grüne Gras.", "Zwei Kinder spielen mit einem roten Ball.",
           "Eine Frau in einem blauen Kleid sitzt auf einer Bank.",
           "Der Mann fährt mit dem Fahrrad die Straße entlang."],
    "fr": ["Un chien court sur l'herbe verte.", "Deux enfants jouent avec un ballon rouge.",
           "Une femme en robe bleue est assise sur un banc.", "L'homme fait du vélo dans la rue."],
    "cs": ["Pes běží po zelené trávě.", "Dvě děti si hrají s červeným míčem.",
           "Žena v modrých šatech sedí na lavičce.", "Muž jede na kole po ulici."],
}
# Function words that show which language came out; each output must contain one of its own language's.
MARKERS = {"de": {"ein", "eine", "einem", "einer", "der", "die", "das", "mit", "auf", "und", "in", "im"},
           "en": {"a", "an", "the", "with", "on", "and", "in", "is", "are"},
           "fr": {"un", "une", "le", "la", "les", "des", "du", "de", "et", "dans", "sur", "avec", "est", "en"},
           "cs": {"a", "na", "v", "ve", "s", "se", "si", "do", "po", "přes", "je", "jsou", "u", "z", "ze", "pro"}}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model(name: str) -> None:
    folder = RELEASED / name
    assert (folder / "README.md").is_file(), f"{name} is not shipped"
    card = (folder / "README.md").read_text(encoding="utf-8")
    for file, digest in checksums(folder).items():
        assert f"`{file}`: `{digest}`" in card, f"{file} does not match the checksum in the card"
    assert sum(f.stat().st_size for f in folder.iterdir()) < 40 * 2**20
    translator = Translator.from_folder(str(folder), device="cpu")
    src, tgt = translator.bundle.source_lang, translator.bundle.target_lang
    for sentence, translation in zip(SENTENCES[src], translator.translate(SENTENCES[src])):
        words = set(re.findall(r"\w+", translation.text.lower()))
        assert words, f"empty translation of {sentence!r}"
        assert words & MARKERS[tgt], f"{translation.text!r} does not look like {tgt}"
        assert translation.text != sentence
