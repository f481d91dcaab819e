"""Corpus files as (source, target) pairs: TSV, TMX, Moses prefixes, two aligned files, zips; compressed or not."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import zstandard

from model.errors import DataError
from training.formats import read_pairs
from training.prepare import DataConfig, prepare

DE = ["Guten Morgen.", "Wie geht es dir?", "Ich möchte ein Zimmer buchen.", "Danke schön."]
EN = ["Good morning.", "How are you?", "I would like to book a room.", "Thank you very much."]
COMPRESSORS = {
    "": lambda data: data,
    ".gz": gzip.compress,
    ".xz": lzma.compress,
    ".bz2": bz2.compress,
    ".zst": lambda data: zstandard.ZstdCompressor().compress(data),
}

TMX = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tmx SYSTEM "tmx14.dtd">
<tmx version="1.4">
  <header creationtool="test" creationtoolversion="1" segtype="sentence" o-tmf="none" adminlang="en"
          srclang="en" datatype="plaintext"/>
  <body>
    <tu tuid="1">
      <tuv xml:lang="en-US"><seg>Press <bpt i="1">&lt;b&gt;</bpt>Save<ept i="1">&lt;/b&gt;</ept> now.</seg></tuv>
      <tuv xml:lang="DE-de"><seg>Drücken Sie jetzt
          <hi type="bold">Speichern</hi><ph x="1">&lt;br/&gt;</ph>.</seg></tuv>
    </tu>
    <tu tuid="2">
      <tuv xml:lang="en"><seg>Only English and French.</seg></tuv>
      <tuv xml:lang="fr"><seg>Seulement anglais et français.</seg></tuv>
    </tu>
    <tu tuid="3">
      <prop type="x-note">not a segment</prop>
      <tuv lang="EN_GB"><note>a note</note><seg>Good morning.</seg></tuv>
      <tuv lang="de_AT"><seg>Guten Morgen.</seg></tuv>
    </tu>
  </body>
</tmx>
"""


def write(path: Path, text: str, suffix: str = "") -> Path:
    target = path.with_name(path.name + suffix)
    target.write_bytes(COMPRESSORS[suffix](text.encode("utf-8")))
    return target


def lines(items: list[str]) -> str:
    return "".join(f"{item}\n" for item in items)


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_tsv_any_compression(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / "corpus.tsv", lines(f"{de}\t{en}" for de, en in zip(DE, EN)), suffix)
    assert list(read_pairs(str(path), ("de", "en"))) == list(zip(DE, EN))


def test_compression_is_told_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "corpus.tsv"  # zstd bytes under a plain name
    path.write_bytes(zstandard.ZstdCompressor().compress(lines(f"{de}\t{en}" for de, en in zip(DE, EN)).encode()))
    assert list(read_pairs(str(path), ("de", "en"))) == list(zip(DE, EN))


def test_tsv_named_columns_are_swapped_for_the_other_direction(tmp_path: Path) -> None:
    path = write(tmp_path / "corpus.tsv", "\ufeff" + "".join(f"{de}\t{en}\r\n" for de, en in zip(DE, EN)))
    assert list(read_pairs(f"{path}@de-en", ("en", "de"))) == list(zip(EN, DE))  # BOM and CRLF dropped too
    assert list(read_pairs(f"{path}@de-en", ("de", "en"))) == list(zip(DE, EN))
    with pytest.raises(DataError, match="columns are de-fr"):
        list(read_pairs(f"{path}@de-fr", ("de", "en")))


def test_tsv_malformed_lines_are_skipped_and_all_malformed_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.tsv", "eins\tone\nno tab here\n\na\tb\tc\nzwei\ttwo\n")
    assert list(read_pairs(str(path), ("de", "en"))) == [("eins", "one"), ("zwei", "two")]
    bad = write(tmp_path / "bad.tsv", "no tab\nnone here either\n")
    with pytest.raises(DataError, match=r"bad.tsv: no line has the form source<TAB>target \(2 lines"):
        list(read_pairs(str(bad), ("de", "en")))


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_tmx_inline_markup_and_language_variants(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / "memory.tmx", TMX, suffix)
    expected = [("Press Save now.", "Drücken Sie jetzt Speichern."), ("Good morning.", "Guten Morgen.")]
    assert list(read_pairs(str(path), ("en", "de"))) == expected
    assert list(read_pairs(str(path), ("de", "en"))) == [(de, en) for en, de in expected]


def test_tmx_without_the_pair_names_the_languages_it_has(tmp_path: Path) -> None:
    path = write(tmp_path / "memory.tmx", TMX)
    with pytest.raises(DataError, match=r"no translation unit has both en and cs \(3 units; languages found: en"):
        list(read_pairs(str(path), ("en", "cs")))


def test_tmx_is_streamed_and_broken_xml_is_a_data_error(tmp_path: Path) -> None:
    units = "".join(f'<tu><tuv xml:lang="en"><seg>s{i}</seg></tuv><tuv xml:lang="de"><seg>t{i}</seg></tuv></tu>'
                    for i in range(2000))
    path = write(tmp_path / "broken.tmx", f'<tmx version="1.4"><header/><body>{units}<tu><tuv></body>')
    pairs = read_pairs(str(path), ("en", "de"))
    assert next(pairs) == ("s0", "t0")  # pairs come out before the parser reaches the broken end
    with pytest.raises(DataError, match="broken.tmx is not valid TMX"):
        list(pairs)


def test_tmx_does_not_expand_external_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    text = (f'<?xml version="1.0"?><!DOCTYPE tmx [<!ENTITY leak SYSTEM "file://{secret}">]><tmx><body>'
            '<tu><tuv xml:lang="en"><seg>a &leak; b</seg></tuv><tuv xml:lang="de"><seg>c</seg></tuv></tu>'
            '</body></tmx>')
    assert list(read_pairs(str(write(tmp_path / "x.tmx", text)), ("en", "de"))) == [("a b", "c")]


@pytest.mark.parametrize(("src_suffix", "tgt_suffix"), [("", ""), (".gz", ".xz"), (".zst", ".bz2")])
def test_moses_prefix(tmp_path: Path, src_suffix: str, tgt_suffix: str) -> None:
    write(tmp_path / "corpus.de", lines(DE), src_suffix)
    write(tmp_path / "corpus.en", lines(EN), tgt_suffix)
    assert list(read_pairs(str(tmp_path / "corpus"), ("en", "de"))) == list(zip(EN, DE))


def test_missing_corpus_says_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"corpus not found: .*nothing is not a file, and neither is .*nothing\.de"):
        list(read_pairs(str(tmp_path / "nothing"), ("de", "en")))


def test_two_aligned_files_and_misalignment(tmp_path: Path) -> None:
    src = write(tmp_path / "a.de", lines(DE), ".gz")
    tgt = write(tmp_path / "a.en", lines(EN))
    assert list(read_pairs(f"{src},{tgt}", ("de", "en"))) == list(zip(DE, EN))
    short = write(tmp_path / "short.en", lines(EN[:2]))
    with pytest.raises(DataError, match=rf"misaligned parallel files: {src} has 4 lines, {short} has 2"):
        list(read_pairs(f"{src},{short}", ("de", "en")))
    write(tmp_path / "m.de", lines(DE[:1]))
    write(tmp_path / "m.en", lines(EN))
    with pytest.raises(DataError, match=r"m\.de has 1 lines, .*m\.en has 4"):
        list(read_pairs(str(tmp_path / "m"), ("de", "en")))


def test_moses_zip_members(tmp_path: Path) -> None:
    path = tmp_path / "de-en.txt.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README", "read me")
        archive.writestr("Tatoeba.de-en.ids", "1\t2\n" * len(DE))
        archive.writestr("Tatoeba.de-en.de", lines(DE))
        archive.writestr("Tatoeba.de-en.en", lines(EN))
    assert list(read_pairs(str(path), ("en", "de"))) == list(zip(EN, DE))
    with pytest.raises(DataError, match=r"expected one member ending in \.fr, found 0"):
        list(read_pairs(str(path), ("fr", "de")))


def test_unreadable_content_is_one_data_error(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.tsv.gz"
    truncated.write_bytes(gzip.compress(lines(f"{de}\t{en}" for de, en in zip(DE, EN)).encode() * 50)[:-30])
    with pytest.raises(DataError, match="cannot read .*cut.tsv.gz"):
        list(read_pairs(str(truncated), ("de", "en")))
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes("Grüße\tgreetings\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.tsv is not UTF-8 text"):
        list(read_pairs(str(latin1), ("de", "en")))
    unknown = write(tmp_path / "notes.txt", "just some text\n")
    with pytest.raises(DataError, match="cannot tell the format of"):
        list(read_pairs(str(unknown), ("de", "en")))


def test_aligned_files_may_be_pipes(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.de"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(gzip.compress(lines(DE).encode())))
    writer.start()
    assert list(read_pairs(f"{fifo},{write(tmp_path / 'b.en', lines(EN))}", ("de", "en"))) == list(zip(DE, EN))
    writer.join()


def test_prepare_mixes_weighted_file_corpora(tmp_path: Path) -> None:
    pairs = [(f"{de} {n}", f"{en} {n}") for n in range(15) for de, en in zip(DE, EN)]  # 60 distinct pairs
    tsv = write(tmp_path / "phrases.tsv", lines(f"{de}\t{en}" for de, en in pairs))
    tmx = write(tmp_path / "memory.tmx", TMX)
    config = DataConfig(prepared_dir=str(tmp_path / "prepared"), dataset=None, pair="de-en", vocab_size=100,
                        corpora=[f"{tsv}:2", str(tmx)], valid_corpora=[str(tsv)])
    report = json.loads((prepare(config) / "prepare.json").read_text())["report"]
    assert report["train"]["corpora"] == {str(tsv): len(pairs), str(tmx): 2}  # the TMX's two de-en units
    assert report["train"]["kept"] == len(pairs) + 2
    assert report["train"]["examples"] == 2 * len(pairs) + 2  # the TSV twice
    assert report["valid"]["kept"] == len(pairs)


def rnnmt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, timeout=120,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"})


def test_prepare_command_with_corpora(tmp_path: Path) -> None:
    pairs = [(f"{de} {n}", f"{en} {n}") for n in range(15) for de, en in zip(DE, EN)]
    extra = write(tmp_path / "extra.tsv", lines(f"{de}\t{en}" for de, en in pairs))
    dev = write(tmp_path / "dev.tsv", lines(f"{de}\t{en}" for de, en in zip(DE, EN)))
    memory = write(tmp_path / "my.tmx", TMX)
    out = tmp_path / "prepared"
    done = rnnmt("prepare", "--pair", "de-en", "--corpus", str(memory), "--corpus", f"{extra}:0.5",
                 "--valid-corpus", str(dev), "--vocab-size", "100", "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "prepare.json").read_text())["report"]
    assert report["train"]["corpora"] == {str(memory): 2, str(extra): len(pairs)}
    assert 2 < report["train"]["examples"] < 2 + len(pairs)  # a fixed sample of about half the TSV
    assert report["valid"]["kept"] == len(DE)
    bad = rnnmt("prepare", "--pair", "de-en", "--corpus", str(tmp_path / "missing.tsv"), "--valid-corpus", str(dev),
                "--out", str(out))
    assert bad.returncode == 2 and "rnnmt: error: corpus not found:" in bad.stderr.decode()
    assert "Traceback" not in bad.stderr.decode()


def test_corpora_in_train_overrides() -> None:
    from training.config import load_config

    config = load_config(None, ["data.pair=de-en", "data.corpora=[my.tmx, extra.tsv:0.5]",
                                "data.valid_corpora=[dev.tsv]"])
    assert config.data.corpora == ["my.tmx", "extra.tsv:0.5"] and config.data.valid_corpora == ["dev.tsv"]
