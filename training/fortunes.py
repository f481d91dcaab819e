"""`python -m training.fortunes [en|de]`: the sentences of Debian's fortune cookies in English (package `fortunes`,
/usr/share/games/fortunes) or German (`fortunes-de`, /usr/share/games/fortunes/de), one per line, for
back-translation (scripts/fortunes-bt.sh).

Kept: sentences of 4-25 words of plain prose (the language's letters) ending in . ! or ?; dropped: attributions
(after "--"), lines in capitals, the collections that are mostly code, ASCII art, program or first names, word lists
or quizzes, repeats, and any sentence that is a side of a Ding dev or test sentence (training/ding.py's split), so
that nothing held out leaks into training."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from training.corpora import ding_path
from training.ding import held_out_sides


@dataclass(frozen=True)
class Collection:
    """Where one language's fortune files are, how they are read, and what is kept of them."""

    root: Path
    package: str  # the Debian package that installs it
    suffix: str  # the files read: "" (every file without a dot in its name) or ".u8" (the UTF-8 copies)
    skip: frozenset[str]  # collections (file names without the suffix) left out whole
    capitals: str = ""  # the language's capital and other letters of plain prose, beside ASCII's
    letters: str = ""

    def files(self) -> list[Path]:
        """The files read, in name order."""
        found = []
        for path in sorted(self.root.iterdir()):
            name = path.name.removesuffix(self.suffix)
            if path.is_file() and path.name.endswith(self.suffix) and "." not in name and name not in self.skip:
                found.append(path)
        return found


COLLECTIONS = {
    "en": Collection(Path("/usr/share/games/fortunes"), "fortunes", "", frozenset({
        "art", "ascii-art", "debian", "linux", "linuxcookie", "computers", "startrek", "zippy", "goedel", "knghtbrd",
        "news", "definitions", "disclaimer", "paradoxum", "perl", "pets", "off", "translate-me"})),
    "de": Collection(Path("/usr/share/games/fortunes/de"), "fortunes-de", ".u8", frozenset({
        "asciiart", "computer", "debian", "channel-debian", "linuxtag", "ms", "infodrom", "translations",
        "woerterbuch", "quiz", "namen", "vornamen"}), capitals="ÄÖÜ", letters="äöüß"),
}


def sentences(text: str, capitals: str = "", letters: str = "") -> list[str]:
    """The kept sentences of one fortune file (fortunes separated by lines of '%'), in order; capitals and letters:
    the language's own beside ASCII's."""
    prose = re.compile(rf"[A-Za-z{capitals}{letters}0-9 ,.;:'!?\"()-]+")
    sentence_end = re.compile(rf"(?<=[.!?])\s+(?=[A-Z{capitals}\"])")
    found = []
    for fortune in text.split("\n%\n"):
        flat = " ".join(re.split(r"\n\s*--", fortune)[0].split())  # the attribution after "--" dropped
        for sentence in sentence_end.split(flat):
            if 4 <= len(sentence.split()) <= 25 and prose.fullmatch(sentence) and sentence[-1] in ".!?" \
                    and not sentence.isupper():
                found.append(sentence)
    return found


def main(collection: Collection = COLLECTIONS["en"]) -> None:
    held_out = set().union(*held_out_sides(ding_path()))
    seen: set[str] = set()
    for path in collection.files():
        for sentence in sentences(path.read_text(encoding="utf-8", errors="replace"), collection.capitals,
                                  collection.letters):
            if sentence not in seen and sentence not in held_out:
                seen.add(sentence)
                print(sentence)
    print(f"{len(seen)} sentences", file=sys.stderr)


if __name__ == "__main__":
    language = sys.argv[1] if len(sys.argv) == 2 else "en"
    if sys.argv[1:] not in ([], ["en"], ["de"]):
        print("usage: python -m training.fortunes [en|de]", file=sys.stderr)
        sys.exit(2)
    chosen = COLLECTIONS[language]
    if not chosen.root.is_dir():
        print(f"training.fortunes: error: {chosen.root} not found (apt-get install {chosen.package})", file=sys.stderr)
        sys.exit(2)
    main(chosen)
