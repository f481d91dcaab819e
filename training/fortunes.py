"""`python -m training.fortunes`: the English sentences of Debian's fortune cookies (/usr/share/games/fortunes,
package `fortunes`), one per line, for back-translation (scripts/fortunes-bt.sh).

Kept: sentences of 4-25 words of plain ASCII prose ending in . ! or ?; dropped: attributions (after "--"), lines in
capitals, the topics that are mostly code, ASCII art or program names, repeats, and any sentence that is a side of a
Ding dev or test sentence (training/ding.py's split), so that nothing held out leaks into training."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from training.corpora import ding_path
from training.ding import held_out_sides

ROOT = Path("/usr/share/games/fortunes")
SKIP = {"art", "ascii-art", "debian", "linux", "linuxcookie", "computers", "startrek", "zippy", "goedel", "knghtbrd",
        "news", "definitions", "disclaimer", "paradoxum", "perl", "pets", "off", "translate-me"}
PROSE = re.compile(r"[A-Za-z0-9 ,.;:'!?\"()-]+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"])")


def sentences(text: str) -> list[str]:
    """The kept sentences of one fortune file (fortunes separated by lines of '%'), in order."""
    found = []
    for fortune in text.split("\n%\n"):
        flat = " ".join(re.split(r"\n\s*--", fortune)[0].split())  # the attribution after "--" dropped
        for sentence in SENTENCE_END.split(flat):
            if 4 <= len(sentence.split()) <= 25 and PROSE.fullmatch(sentence) and sentence[-1] in ".!?" \
                    and not sentence.isupper():
                found.append(sentence)
    return found


def main(root: Path = ROOT) -> None:
    held_out = set().union(*held_out_sides(ding_path()))
    seen: set[str] = set()
    for path in sorted(root.iterdir()):
        if "." in path.name or path.is_dir() or path.name in SKIP:
            continue
        for sentence in sentences(path.read_text(encoding="utf-8", errors="replace")):
            if sentence not in seen and sentence not in held_out:
                seen.add(sentence)
                print(sentence)
    print(f"{len(seen)} sentences", file=sys.stderr)


if __name__ == "__main__":
    main()
