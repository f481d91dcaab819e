"""The English and German of the fortune cookies for back-translation (training/fortunes.py): what a sentence must be
to be kept, which topics are skipped, and that no side of a Ding dev or test sentence gets through (local fixture
files)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from training import fortunes
from training.ding import split_of

FORTUNE_FILE = """Never put off till tomorrow what you can do today.  Unless it is homework.
\t-- A. Teacher, "Sayings"
%
THIS IS A VERY LOUD SENTENCE INDEED.
%
Too short here.
%
Das ist kein englischer Satz, aber ASCII.
%
It costs 5 euros, said the café owner.
%
A long line that has
a line break in the middle of it!
"""


def test_a_fortune_gives_its_prose_sentences_without_attribution_capitals_or_short_ones() -> None:
    assert fortunes.sentences(FORTUNE_FILE) == [
        "Never put off till tomorrow what you can do today.",  # "Unless it is homework." has 4 words: kept too
        "Unless it is homework.",
        "Das ist kein englischer Satz, aber ASCII.",  # ASCII prose: the filter is by form, not by language
        "A long line that has a line break in the middle of it!",
    ]


def test_held_out_sentences_repeats_and_skipped_topics_are_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    held = next(f"The cat number {i} sleeps on the mat." for i in range(1000)
                if split_of(f"Die Katze Nummer {i} schläft auf der Matte. :: The cat number {i} sleeps on the mat.")
                == "test")
    german = held.replace("The cat number", "Die Katze Nummer").replace("sleeps on the mat", "schläft auf der Matte")
    ding = tmp_path / "de-en"
    ding.write_text(f"# a comment\n{german} :: {held}\n", encoding="utf-8")
    monkeypatch.setenv("RNNMT_DING_PATH", str(ding))
    root = tmp_path / "fortunes"
    root.mkdir()
    (root / "wisdom").write_text(f"A stitch in time saves nine.\n%\n{held}\n%\nA stitch in time saves nine.\n")
    (root / "people").write_text("Some people are always late for everything.\n")
    (root / "perl").write_text("Just another Perl hacker, so they say.\n")  # a skipped topic
    (root / "wisdom.dat").write_text("Binary index files are never read.\n")  # strfile's index: skipped
    fortunes.main(dataclasses.replace(fortunes.COLLECTIONS["en"], root=root))
    out = capsys.readouterr()
    assert out.out.splitlines() == ["Some people are always late for everything.", "A stitch in time saves nine."]
    assert "2 sentences" in out.err


GERMAN_FILE = """Übung macht den Meister, sagt man.  Ärger macht ihn nicht.
\t-- Sprichwort
%
It costs 5 euros, said the café owner.
%
Der Fluß fließt über große Steine ins Tal.
"""


def test_german_fortunes_keep_umlauts_and_split_before_capital_umlauts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """German prose has its own letters (a sentence may start with Ä, Ö or Ü); the .u8 files are the UTF-8 copies
    read, the Latin-1 originals beside them and the skipped collections are not."""
    ding = tmp_path / "de-en"
    ding.write_text("# no sentences\n", encoding="utf-8")
    monkeypatch.setenv("RNNMT_DING_PATH", str(ding))
    root = tmp_path / "de"
    root.mkdir()
    (root / "sprichworte.u8").write_text(GERMAN_FILE, encoding="utf-8")
    (root / "sprichworte").write_bytes("Der Fluß im Latin-1-Original wird nicht gelesen.\n".encode("latin-1"))
    (root / "computer.u8").write_text("Der Rechner stürzt schon wieder ab.\n", encoding="utf-8")  # skipped
    fortunes.main(dataclasses.replace(fortunes.COLLECTIONS["de"], root=root))
    out = capsys.readouterr()
    assert out.out.splitlines() == ["Übung macht den Meister, sagt man.",  # "Ärger macht ihn nicht." has 4 words too
                                    "Ärger macht ihn nicht.", "Der Fluß fließt über große Steine ins Tal."]
    assert "3 sentences" in out.err
