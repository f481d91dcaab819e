"""gettext catalogs as parallel text: system locale folders (`--corpus gettext`) and single .mo / .po files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polib
import pytest

from model.errors import DataError
from training import catalogs
from training.corpora import iter_corpus
from training.formats import read_pairs
from training.prepare import DataConfig, prepare

# msgid -> (German, French); None: no translation in that catalog
MESSAGES = {
    "Open the file.": ("Öffnen Sie die Datei.", "Ouvrez le fichier."),
    "_Save As": ("Speichern _unter", "Enregistrer _sous"),
    "&Quit the program": ("Programm &beenden", "&Quitter le programme"),
    "Could not read %s": ("%s konnte nicht gelesen werden", "Impossible de lire %s"),
    "Copied {count} files": ("{count} Dateien kopiert", "{count} fichiers copiés"),
    "Usage:\n  tool [OPTION]": ("Aufruf:\n  tool [OPTION]", "Usage :\n  tool [OPTION]"),
    "OK": ("OK", "OK"),  # the same on both sides: nothing learnt
    "Not translated to German.": (None, "Pas traduit en allemand."),
    "The network is down.": ("Das Netzwerk ist nicht erreichbar.", None),
}
WANTED_DE = [
    ("Öffnen Sie die Datei.", "Open the file."),
    ("Speichern unter", "Save As"),
    ("Programm beenden", "Quit the program"),
    ("Das Netzwerk ist nicht erreichbar.", "The network is down."),
]


def catalog(lang: int | None, fuzzy: str = "") -> polib.POFile:
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": ["de", "fr"][lang or 0]}
    for msgid, texts in MESSAGES.items():
        if texts[lang or 0] is not None:
            po.append(polib.POEntry(msgid=msgid, msgstr=texts[lang or 0]))
    if fuzzy:
        po.append(polib.POEntry(msgid=fuzzy, msgstr="Unsicher übersetzt.", flags=["fuzzy"]))
    return po


@pytest.fixture()
def locale(tmp_path: Path) -> Path:
    """A locale tree as Debian lays it out: de (two domains, one as de_DE), fr, and a broken catalog."""
    base = tmp_path / "locale"
    for folder, lang, domain in [("de", 0, "editor"), ("de_DE.UTF-8", 0, "extra"), ("fr", 1, "editor"),
                                 ("sr@latin", 1, "editor")]:
        (base / folder / "LC_MESSAGES").mkdir(parents=True, exist_ok=True)
        catalog(lang, fuzzy="A fuzzy one.").save_as_mofile(str(base / folder / "LC_MESSAGES" / f"{domain}.mo"))
    (base / "de" / "LC_MESSAGES" / "broken.mo").write_bytes(b"not a catalog at all")
    (base / "fr" / "LC_MESSAGES").joinpath("broken.mo").write_bytes(b"not a catalog either")
    return base


def test_clean_keeps_one_line_of_text() -> None:
    assert catalogs.clean("  Save _As ") == "Save As"
    assert catalogs.clean("E&xit") == "E&xit"  # an accelerator inside a word is not told from text: left as is
    assert catalogs.clean("log_statement_stats is on.") == "log_statement_stats is on."
    for dropped in ["%d files", "%1$s and %2$s", "{0} left", "${HOME} is unset", "a\nb", "col1\tcol2",
                    "aligned  help", "", "1234", " ".join(["word"] * (catalogs.MAX_WORDS + 1))]:
        assert catalogs.clean(dropped) is None, dropped
    assert catalogs.language_of("de_DE.UTF-8") == "de" and catalogs.language_of("sr@latin") == ""


def test_system_catalogs_for_a_pair_with_english(locale: Path) -> None:
    report = catalogs.CatalogReport()
    got = list(catalogs.pairs(("de", "en"), [locale], report))
    assert sorted(got) == sorted(WANTED_DE * 2)  # two domains, the same messages; prepare deduplicates
    assert report.catalogs == 2 and len(report.unreadable) == 1 and "broken.mo" in report.unreadable[0]
    flipped = list(catalogs.pairs(("en", "de"), [locale]))
    assert flipped == [(en, de) for de, en in got]


def test_two_other_languages_are_joined_on_the_english_message(locale: Path) -> None:
    got = sorted(catalogs.pairs(("de", "fr"), [locale]))  # only the editor domain is in both; sr@latin is not French
    assert got == sorted([("Öffnen Sie die Datei.", "Ouvrez le fichier."), ("Speichern unter", "Enregistrer sous"),
                   ("Programm beenden", "Quitter le programme")])


def test_named_corpus_reads_the_locale_dirs_of_the_environment(locale: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNMT_LOCALE_DIRS", f"{locale}:{locale.parent / 'missing'}")
    assert sorted(iter_corpus("gettext", ("de", "en"), "train", None)) == sorted(WANTED_DE * 2)
    with pytest.raises(DataError, match="no dev split"):
        list(iter_corpus("gettext", ("de", "en"), "valid", None))
    with pytest.raises(DataError, match="no gettext catalogs for cs-en under"):
        list(iter_corpus("gettext", ("cs", "en"), "train", None))
    with pytest.raises(DataError, match="needs a language other than English"):
        list(catalogs.pairs(("en", "en"), [locale]))


@pytest.mark.parametrize("suffix", [".mo", ".po"])
def test_one_catalog_file_as_a_corpus(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"editor{suffix}"
    po = catalog(0, fuzzy="A fuzzy one.")
    po.save_as_mofile(str(path)) if suffix == ".mo" else po.save(str(path))
    assert sorted(read_pairs(str(path), ("de", "en"))) == sorted(WANTED_DE)
    assert sorted(read_pairs(str(path), ("en", "de"))) == sorted((en, de) for de, en in WANTED_DE)
    with pytest.raises(DataError, match="pairs English with one language"):
        list(read_pairs(str(path), ("de", "fr")))
    broken = tmp_path / "broken.mo"
    broken.write_bytes(b"\x00" * 40)
    with pytest.raises(DataError, match="not a readable gettext catalog"):
        list(read_pairs(str(broken), ("de", "en")))


def test_prepare_command_with_the_gettext_corpus(locale: Path, tmp_path: Path) -> None:
    dev = tmp_path / "dev.tsv"
    dev.write_text("Guten Morgen.\tGood morning.\nDanke.\tThank you.\n", encoding="utf-8")
    out = tmp_path / "prepared"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin",
           "RNNMT_LOCALE_DIRS": str(locale)}
    done = subprocess.run([sys.executable, "-m", "app.cli", "prepare", "--pair", "de-en", "--corpus", "gettext:2",
                           "--valid-corpus", str(dev), "--vocab-size", "60", "--out", str(out)],
                          capture_output=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "prepare.json").read_text())["report"]
    assert report["train"]["corpora"] == {"gettext": 2 * len(WANTED_DE)}
    assert report["train"]["kept"] == len(WANTED_DE) and report["train"]["examples"] == 2 * len(WANTED_DE)


def test_prepare_mixes_catalogs_with_files(locale: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNMT_LOCALE_DIRS", str(locale))
    tsv = tmp_path / "extra.tsv"
    tsv.write_text("".join(f"Satz {n}.\tSentence {n}.\n" for n in range(20)), encoding="utf-8")
    config = DataConfig(prepared_dir=str(tmp_path / "prepared"), dataset=None, pair="de-en", vocab_size=60,
                        corpora=["gettext", str(tsv)], valid_corpora=[str(tsv)])
    report = json.loads((prepare(config) / "prepare.json").read_text())["report"]
    assert report["train"]["kept"] == len(WANTED_DE) + 20
