"""Named and file corpora, mixed by weight: `multi30k:3`, `ding-sentences:3`, `news.tsv:0.5`, `tm.tmx`.

A corpus spec is `NAME_OR_PATH[:WEIGHT]`. The weight repeats the corpus (2 = twice) and samples its
fractional part (0.5 = a fixed half, the same on every run); training/prepare.py applies it.
Names: `multi30k` (train / val of the configured pair), `ding` (every Ding train pair) and its parts
`ding-sentences`, `ding-phrases` (4+ words), `ding-short` (2-3 words), `ding-words` (1 word); for
validation, `ding` is the Ding dev split; `gettext` (the software-message catalogs installed on this system,
training/catalogs.py; train only). Files: see `training/formats.py`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from model.errors import DataError
from training import ding
from training.data import default_data_dir, multi30k_file, read_parallel

DING_PARTS = {
    "ding": lambda de, sentence: True,
    "ding-sentences": lambda de, sentence: sentence,
    "ding-phrases": lambda de, sentence: not sentence and len(de.split()) >= 4,
    "ding-short": lambda de, sentence: not sentence and 2 <= len(de.split()) <= 3,
    "ding-words": lambda de, sentence: len(de.split()) == 1,
}
NAMES = ("multi30k", *DING_PARTS, "gettext")


@dataclass(frozen=True)
class CorpusSpec:
    source: str  # a name from NAMES or a path
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> CorpusSpec:
        source, _, weight = text.rpartition(":") if _has_weight(text) else (text, "", "")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise DataError(f"corpus weight must be a number: {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise DataError(f"corpus weight must be > 0: {text!r}")
        return cls(source, value)


def _has_weight(text: str) -> bool:
    head, sep, tail = text.rpartition(":")
    return bool(sep and head) and tail.replace(".", "", 1).lstrip("-").isdigit()


def ding_path() -> Path:
    return Path(os.environ.get("RNNMT_DING_PATH", str(ding.DING_PATH)))


def _oriented(pairs: Iterable[tuple[str, str]], langs: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """Ding is (German, English); turn it into (source, target) for the pair."""
    if set(langs) != {"de", "en"}:
        raise DataError(f"the Ding dictionary is German-English; the pair is {'-'.join(langs)}")
    flip = langs == ("en", "de")
    for de, en in pairs:
        yield (en, de) if flip else (de, en)


def iter_corpus(source: str, langs: tuple[str, str], split: str, data_dir: str | None,
                download: bool = False) -> Iterator[tuple[str, str]]:
    """(source, target) pairs of one corpus, streamed; split is 'train' or 'valid'."""
    if source == "multi30k":
        folder = Path(data_dir) if data_dir else default_data_dir()
        name = "train" if split == "train" else "val"
        src, tgt = (multi30k_file(folder, name, lang, download) for lang in langs)
        yield from zip(*read_parallel(src, tgt))
    elif source in DING_PARTS:
        if split == "valid":
            yield from _oriented(ding.sentence_pairs("dev", ding_path()), langs)
            return
        keep = DING_PARTS[source]
        yield from _oriented(((de, en) for de, en, sentence in ding.train_pairs(ding_path()) if keep(de, sentence)),
                             langs)
    elif source == "gettext":
        if split == "valid":
            raise DataError("gettext catalogs have no dev split: validate on multi30k, ding or a file")
        from training import catalogs

        yield from catalogs.pairs(langs)
    else:
        from training.formats import read_pairs  # files: TSV, TMX, Moses, plain pairs, compressed

        yield from read_pairs(source, langs)


def mix(specs: list[str], langs: tuple[str, str], split: str, data_dir: str | None,
        download: bool = False) -> tuple[list[str], list[str], dict[str, int]]:
    """Every pair of small corpora (validation sets) as source and target lists, and the count per corpus."""
    src: list[str] = []
    tgt: list[str] = []
    counts: dict[str, int] = {}
    for text in specs:
        spec = CorpusSpec.parse(text)
        before = len(src)
        for s, t in iter_corpus(spec.source, langs, split, data_dir, download):
            src.append(s)
            tgt.append(t)
        counts[spec.source] = len(src) - before
    return src, tgt, counts
