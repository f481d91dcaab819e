"""The Ding German-English dictionary (Debian `trans-de-en`): aligned pairs and its fixed train/dev/test split.

The file is one entry a line, `German :: English`; ` | ` separates aligned sub-entries (as many on each side),
`; ` separates variants (synonyms, alternative sentences; their counts may differ), and `{…}`, `[…]`, `(…)` and
`/ABBR/` are annotations. The split is decided on the raw line so that every parser agrees on it:

    first byte of sha1(line as UTF-8, without its newline)  <  13  -> test
                                                        13 .. 25  -> dev
                                                        else      -> train      (lines starting with '#': comments)

The test (dev) set is the sub-entries of test (dev) lines whose German side is an example sentence: after
removing annotations, its first variant ends in `.`, `!` or `?` and has at least four words; one pair per such
sub-entry (the first variant of each side), duplicates removed. No pair of a test or dev line is ever trained on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from model.errors import DataError

DING_PATH = Path("/usr/share/trans/de-en")
INSTALL_HINT = "install Debian's trans-de-en package (sudo apt-get install trans-de-en) or pass its path"
SPLITS = ("train", "dev", "test")

_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)|(?<!\S)/[^/\s]+/(?!\S)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:])")


SPLITS = ("train", "dev", "test")


def split_of(raw_line: str) -> str:
    """'test', 'dev' or 'train' for one raw line of the file (without its newline)."""
    first = hashlib.sha1(raw_line.encode("utf-8")).digest()[0]  # noqa: S324 - a split rule, not security
    return "test" if first < 13 else "dev" if first < 26 else "train"


def clean(text: str) -> str:
    """One variant without its annotations and with single spaces."""
    previous = None
    while previous != text:  # nested parentheses: remove the innermost first
        previous, text = text, _ANNOTATION.sub(" ", text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(text.split()))


def is_sentence(german: str) -> bool:
    return german.endswith((".", "!", "?")) and len(german.split()) >= 4


@dataclass(frozen=True)
class SubEntry:
    """One aligned sub-entry: the cleaned variants of each side, and the split of its line."""

    german: list[str]
    english: list[str]
    split: str

    @property
    def sentence(self) -> bool:
        return bool(self.german) and is_sentence(self.german[0])

    def pairs(self) -> list[tuple[str, str]]:
        """Training pairs: variants paired by position, each extra variant paired with the other side's first."""
        de, en = self.german, self.english
        if not de or not en:
            return []
        out = list(zip(de, en))
        out += [(d, en[0]) for d in de[len(en):]] + [(de[0], e) for e in en[len(de):]]
        return out


def _variants(side: str) -> list[str]:
    return [v for v in (clean(part) for part in side.split("; ")) if v]


def read_entries(path: str | Path = DING_PATH, splits: tuple[str, ...] = SPLITS) -> Iterator[SubEntry]:
    """Every sub-entry of the dictionary's lines of these splits, streamed, with the split of its line (the other
    lines are skipped before their annotations are cleaned: a dev or test set reads a tenth of the file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Ding dictionary not found at {path}: {INSTALL_HINT}")
    with open(path, encoding="utf-8", newline="\n") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if not line or line.startswith("#") or " :: " not in line:
                continue
            split = split_of(line)
            if split not in splits:
                continue
            german, english = line.split(" :: ", 1)
            de_parts, en_parts = german.split(" | "), english.split(" | ")
            if len(de_parts) != len(en_parts):
                continue  # the dictionary promises equal counts; a line that breaks it is skipped
            for de, en in zip(de_parts, en_parts):
                yield SubEntry(_variants(de), _variants(en), split)


def sentence_pairs(split: str, path: str | Path = DING_PATH) -> list[tuple[str, str]]:
    """The dev or test set: (German, English) example sentences of that split, in file order, deduplicated."""
    if split not in ("dev", "test"):
        raise DataError(f"Ding evaluation splits are dev and test, not {split!r}")
    seen: set[tuple[str, str]] = set()
    out = []
    for entry in read_entries(path, (split,)):
        if entry.sentence and entry.english:
            pair = (entry.german[0], entry.english[0])
            if pair not in seen:
                seen.add(pair)
                out.append(pair)
    return out


def held_out_sides(path: str | Path = DING_PATH) -> tuple[frozenset[str], frozenset[str]]:
    """The German and the English sentences of the dev and test sets (read once per file and version)."""
    path = Path(path)
    info = path.stat() if path.is_file() else None
    return _held_out_sides(path, info.st_size if info else -1, info.st_mtime_ns if info else -1)


@lru_cache(maxsize=4)
def _held_out_sides(path: Path, size: int, mtime_ns: int) -> tuple[frozenset[str], frozenset[str]]:
    pairs = sentence_pairs("dev", path) + sentence_pairs("test", path)
    return frozenset(de for de, _ in pairs), frozenset(en for _, en in pairs)


def train_pairs(path: str | Path = DING_PATH, min_words: int = 1) -> Iterator[tuple[str, str, bool]]:
    """(German, English, is_sentence) training pairs from train lines only; min_words on the German side.

    The dictionary repeats some example sentences on several lines: a train pair whose German or English side is
    also a dev or test sentence is left out too (48 pairs in the 2023-01-30 file), so that nothing evaluated on
    was trained on."""
    held_de, held_en = held_out_sides(path)
    for entry in read_entries(path, ("train",)):
        for de, en in entry.pairs():
            if len(de.split()) >= min_words and de not in held_de and en not in held_en:
                yield de, en, is_sentence(de)
