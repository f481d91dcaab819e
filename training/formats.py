"""Parallel corpus files, streamed as (source, target) pairs: TSV, TMX, Moses, two aligned files, OPUS zips.

A file spec (the part of a corpus spec before its `:WEIGHT`, see training/corpora.py) is one of

    news.tsv            TSV `source<TAB>target`, columns in the pair's order; `news.tsv@de-en` names the columns'
                        languages instead, and they are swapped when the pair is en-de
    memory.tmx          TMX 1.4 translation memory; languages from each `<tuv xml:lang=...>` (training/tmx.py)
    corpus              Moses style: `corpus.de` and `corpus.en` for the pair de-en (each may be compressed:
                        `corpus.de.gz`), the prefix itself not being a file
    a.de,a.en           two aligned plain files, source first (also `@de-en` to name their languages)
    de-en.txt.zip       a Moses zip as OPUS ships it: the members ending in `.de` and `.en`, read from the zip
    opus:tatoeba        a corpus downloaded earlier with `rnnmt prepare --download tatoeba` (training/download.py)
    grep.mo, app.po     one gettext catalog: English msgids and their translations (training/catalogs.py)

Every file may be gzip, xz, bzip2 or zstd compressed, told by its first bytes, not its name. Everything streams:
memory stays bounded whatever the size of the file. Every problem is a DataError of one line.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import re
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import zip_longest
from pathlib import Path
from typing import IO

import zstandard

from model.errors import DataError

log = logging.getLogger(__name__)

COMPRESSED_SUFFIXES = ("", ".gz", ".xz", ".bz2", ".zst")
_MAGIC = {b"\x1f\x8b": lambda raw: gzip.GzipFile(fileobj=raw), b"\xfd7zXZ\x00": lzma.LZMAFile,
          b"BZh": bz2.BZ2File}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COLUMNS = re.compile(r"@([A-Za-z]{2,3})-([A-Za-z]{2,3})$")
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, zipfile.BadZipFile)


def read_pairs(spec: str, langs: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(source, target) pairs of one file spec (see the module docstring) for the pair langs, streamed."""
    spec, columns = _split_columns(spec)
    if spec.startswith("opus:"):
        from training.download import cached_opus

        yield from _moses_zip(cached_opus(spec[len("opus:"):], langs), langs)
        return
    path = Path(spec).expanduser()
    if path.is_file():
        kind = _kind(path)
        if kind == "tmx":
            from training.tmx import read_tmx

            _no_columns(columns, spec)
            yield from read_tmx(path, langs)
        elif kind == "zip":
            _no_columns(columns, spec)
            yield from _moses_zip(path, langs)
        elif kind == "gettext":
            from training.catalogs import file_pairs

            _no_columns(columns, spec)
            yield from file_pairs(path, langs)
        else:
            yield from _oriented(read_tsv(path), columns, langs)
    elif "," in spec:
        src, tgt = spec.split(",", 1)
        yield from _oriented(read_aligned(Path(src).expanduser(), Path(tgt).expanduser()), columns, langs)
    else:
        _no_columns(columns, spec)
        yield from read_aligned(*moses_files(path, langs))


def _split_columns(spec: str) -> tuple[str, tuple[str, str] | None]:
    match = _COLUMNS.search(spec)
    if not match:
        return spec, None
    return spec[: match.start()], (match.group(1).lower(), match.group(2).lower())


def _no_columns(columns: tuple[str, str] | None, spec: str) -> None:
    if columns:
        raise DataError(f"{spec}: TMX and Moses corpora name their own languages; drop the @{'-'.join(columns)}")


def _oriented(pairs: Iterator[tuple[str, str]], columns: tuple[str, str] | None,
              langs: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """Column pairs as (source, target): as they are, or swapped when the columns are named in the other order."""
    if columns is None or columns == langs:
        yield from pairs
    elif columns == (langs[1], langs[0]):
        yield from ((tgt, src) for src, tgt in pairs)
    else:
        raise DataError(f"the columns are {'-'.join(columns)} but the pair is {'-'.join(langs)}")


def _kind(path: Path) -> str:
    """'tmx', 'zip', 'gettext' or 'tsv', from the name without its compression suffix, else from the first bytes."""
    name = path.name.lower()
    if name.endswith((".mo", ".po")):
        return "gettext"
    for suffix in COMPRESSED_SUFFIXES[1:]:
        name = name.removesuffix(suffix)
    if name.endswith(".tmx"):
        return "tmx"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".tsv"):
        return "tsv"
    with open_binary(path) as handle:
        head = handle.read(4096)
    if b"<tmx" in head:
        return "tmx"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if b"\t" in head.split(b"\n", 1)[0]:
        return "tsv"
    raise DataError(f"cannot tell the format of {path}: name it .tsv or .tmx, or give a Moses prefix or two "
                    "files as a.src,a.tgt")


def readable(path: Path) -> bool:
    """A file, a FIFO (`<(zcat a.gz)`) or `-` (standard input): anything but a folder or nothing."""
    return str(path) == "-" or (path.exists() and not path.is_dir())


@contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when its first bytes say gzip, xz, bzip2 or zstd; opened once, so that
    pipes work."""
    try:
        raw = open(sys.stdin.fileno() if str(path) == "-" else path, "rb", closefd=str(path) != "-")  # noqa: SIM115
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    with raw:
        head = raw.peek(8)[:8]
        opener = next((cls for magic, cls in _MAGIC.items() if head.startswith(magic)), None)
        if opener is not None:
            with opener(raw) as stream:
                yield stream
        elif head.startswith(_ZSTD_MAGIC):
            with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as reader:
                yield io.BufferedReader(reader)
        else:
            yield raw


def text_lines(handle: IO[bytes], name: str) -> Iterator[str]:
    """Lines of a UTF-8 byte stream without their line endings (a BOM ignored); errors become DataErrors."""
    number = 0
    try:
        for line in io.TextIOWrapper(handle, encoding="utf-8-sig", newline="\n"):
            number += 1
            yield line.rstrip("\n").rstrip("\r")
    except UnicodeDecodeError as exc:  # decoded in blocks: the bad byte is at or after the next line
        raise DataError(f"{name} is not UTF-8 text (after line {number}): {exc.reason}") from None
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read {name} (after line {number}): {exc}") from None


def read_lines(path: Path) -> Iterator[str]:
    """The lines of one (possibly compressed) text file, streamed."""
    if not readable(path):
        raise DataError(f"file not found: {path}")
    with open_binary(path) as handle:
        yield from text_lines(handle, str(path))


def read_tsv(path: Path) -> Iterator[tuple[str, str]]:
    """The two columns of each line; blank lines skipped, lines without exactly one tab counted and skipped."""
    good = bad = 0
    first_bad = 0
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            bad += 1
            first_bad = first_bad or number
            continue
        good += 1
        yield fields[0], fields[1]
    if bad and not good:
        raise DataError(f"{path}: no line has the form source<TAB>target ({bad} lines, the first is line {first_bad})")
    if bad:
        log.warning("%s: skipped %d lines without exactly one tab (the first is line %d)", path, bad, first_bad)


def _aligned(src_lines: Iterator[str], tgt_lines: Iterator[str], src_name: str,
             tgt_name: str) -> Iterator[tuple[str, str]]:
    count = 0
    for src, tgt in zip_longest(src_lines, tgt_lines):
        if src is None or tgt is None:
            rest = 1 + sum(1 for _ in (tgt_lines if src is None else src_lines))
            n_src, n_tgt = (count, count + rest) if src is None else (count + rest, count)
            raise DataError(f"misaligned parallel files: {src_name} has {n_src} lines, {tgt_name} has {n_tgt}")
        count += 1
        yield src, tgt


def read_aligned(src_path: Path, tgt_path: Path) -> Iterator[tuple[str, str]]:
    """Line i of src_path with line i of tgt_path; a DataError naming both counts when they differ."""
    for path in (src_path, tgt_path):
        if not readable(path):
            raise DataError(f"file not found: {path}")
    yield from _aligned(read_lines(src_path), read_lines(tgt_path), str(src_path), str(tgt_path))


def moses_files(prefix: Path, langs: tuple[str, str]) -> tuple[Path, Path]:
    """prefix.SRC and prefix.TGT, each possibly with a compression suffix."""
    found = []
    for lang in langs:
        candidates = [prefix.with_name(f"{prefix.name}.{lang}{suffix}") for suffix in COMPRESSED_SUFFIXES]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            raise DataError(f"corpus not found: {prefix} is not a file, and neither is {candidates[0]} "
                            f"(nor with .gz, .xz, .bz2, .zst)")
        found.append(existing[0])
    return found[0], found[1]


def _moses_zip(path: Path, langs: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """The members ending in .SRC and .TGT of a Moses zip (OPUS: Tatoeba.de-en.de, Tatoeba.de-en.en)."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as a zip file: {exc}") from None
    with archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        members = []
        for lang in langs:
            matching = [name for name in names if name.endswith(f".{lang}")]
            if len(matching) != 1:
                raise DataError(f"{path}: expected one member ending in .{lang}, found {len(matching)} "
                                f"(members: {', '.join(names[:10])})")
            members.append(matching[0])
        with archive.open(members[0]) as src, archive.open(members[1]) as tgt:
            src_name, tgt_name = (f"{path}:{member}" for member in members)
            yield from _aligned(text_lines(src, src_name), text_lines(tgt, tgt_name), src_name, tgt_name)
