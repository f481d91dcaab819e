"""The Ding dictionary reader: its fixed split rule, annotation cleaning, pairing, and what may be trained on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from model.errors import DataError
from training import ding
from training.corpora import iter_corpus
from training.evaluate import resolve_testset

ENTRY = ("Abpfiff {m}; Schlusspfiff {m} [sport] | Der Schiedsrichter gab den Schlusspfiff. :: "
         "final whistle | The referee blew for full-time.")


def line_in(split: str, stem: str) -> str:
    """A dictionary line with an example sentence whose SHA-1 puts it in `split` (found by trying numbers)."""
    for n in range(10_000):
        line = f"{stem} {{n}} | Das ist Satz Nummer {n}. :: {stem.lower()} | This is sentence number {n}."
        if ding.split_of(line) == split:
            return line
    raise AssertionError("no line found")


@pytest.fixture()
def dictionary(tmp_path: Path) -> Path:
    lines = ["# Version :: devel 2023-01-30", ENTRY, line_in("test", "Test"), line_in("dev", "Dev"),
             line_in("train", "Zug"),
             # the test line's sentence again on a train line: must not be trained on
             "Wiederholung {f} | " + line_in("test", "Test").split(" | ")[1]]
    path = tmp_path / "de-en"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_split_is_the_first_byte_of_the_lines_sha1() -> None:
    for line in (ENTRY, "a :: b", "Haus {n} :: house"):
        first = hashlib.sha1(line.encode("utf-8")).digest()[0]
        assert ding.split_of(line) == ("test" if first < 13 else "dev" if first < 26 else "train")


def test_annotations_are_removed_and_variants_paired() -> None:
    assert ding.clean("Schlusspfiff {m} [sport] (des Spiels)") == "Schlusspfiff"
    assert ding.clean("Wo in der Welt bist du? /WITWAY/") == "Wo in der Welt bist du?"
    entry = ding.SubEntry(["A", "B", "C"], ["x", "y"], "train")
    assert entry.pairs() == [("A", "x"), ("B", "y"), ("C", "x")]
    assert ding.is_sentence("Der Schiedsrichter gab den Schlusspfiff.")
    assert not ding.is_sentence("gab den Pfiff.") and not ding.is_sentence("Der Schiedsrichter gab den Schlusspfiff")


def test_held_out_sentences_are_never_trained_on(dictionary: Path) -> None:
    test = ding.sentence_pairs("test", dictionary)
    dev = ding.sentence_pairs("dev", dictionary)
    assert len(test) == 1 and len(dev) == 1 and test[0][1].startswith("This is sentence number")
    trained = list(ding.train_pairs(dictionary))
    trained_de = {de for de, _, _ in trained}
    assert "Der Schiedsrichter gab den Schlusspfiff." in trained_de or ding.split_of(ENTRY) != "train"
    assert not trained_de & {de for de, _ in test + dev}  # not even from the repeating train line
    assert ("Wiederholung", "") not in trained  # that line's other sub-entry is kept, its sentence is not


def test_corpus_names_orient_the_pairs(dictionary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNMT_DING_PATH", str(dictionary))
    de_en = list(iter_corpus("ding-sentences", ("de", "en"), "train", None))
    en_de = list(iter_corpus("ding-sentences", ("en", "de"), "train", None))
    assert en_de == [(en, de) for de, en in de_en]
    assert list(iter_corpus("ding", ("de", "en"), "valid", None)) == ding.sentence_pairs("dev", dictionary)
    with pytest.raises(DataError, match="German-English"):
        list(iter_corpus("ding", ("fr", "en"), "train", None))


def test_evaluation_files_and_a_missing_dictionary(dictionary: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNMT_DING_PATH", str(dictionary))
    monkeypatch.setenv("RNNMT_CACHE_DIR", str(tmp_path / "cache"))
    src, ref = resolve_testset("ding:test", "en", "de", None)
    (de, en), = ding.sentence_pairs("test", dictionary)
    assert src.read_text(encoding="utf-8") == en + "\n" and ref.read_text(encoding="utf-8") == de + "\n"
    monkeypatch.setenv("RNNMT_DING_PATH", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="apt-get install trans-de-en"):
        list(iter_corpus("ding", ("de", "en"), "train", None))


@pytest.mark.skipif(not ding.DING_PATH.is_file(), reason="Debian's trans-de-en is not installed (make test-deps)")
def test_the_real_dictionary_gives_the_documented_split() -> None:
    """The sizes the model cards report: 1,006 test and 975 dev example sentences in the 2023-01-30 file."""
    test, dev = ding.sentence_pairs("test"), ding.sentence_pairs("dev")
    assert (len(test), len(dev)) == (1006, 975)
    held_de, held_en = ding.held_out_sides()
    sentences = [(de, en) for de, en, sentence in ding.train_pairs() if sentence]
    assert len(sentences) > 18_000
    assert not any(de in held_de or en in held_en for de, en in sentences)
