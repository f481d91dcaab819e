"""Split a paragraph into sentences and join translations back with the original whitespace.

`split(text)` returns the sentences and the gaps around them, such that
gaps[0] + sentences[0] + gaps[1] + ... + sentences[-1] + gaps[-1] == text (always; tested as a round trip).
Sentences end at every line break, after . ! ? … (plus closing quotes or brackets) followed by whitespace and
a word that does not start in lower case (and not after a known abbreviation or an initial), and after the
CJK full stops 。！？ even without a space. Rules, not a model: good enough for paragraphs typed into a box.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

SENTENCE_END = ".!?…"
CJK_END = "。！？"
CLOSERS = "\"'”’»)]}"
ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "cf", "no", "fig", "approx",
    "z.b", "u.a", "bzw", "ca", "nr", "hr", "fr", "str", "usw", "vgl", "evtl", "inkl", "d.h", "s", "mio", "mrd",
}
_GAP = re.compile(r"\s+")
_CJK_BOUNDARY = re.compile(f"(?<=[{CJK_END}])(?=[^\\s{re.escape(CLOSERS)}])")


@dataclass(frozen=True)
class Segmented:
    """A paragraph as sentences and the whitespace around them: len(gaps) == len(sentences) + 1."""

    sentences: list[str]
    gaps: list[str]

    def join(self, sentences: list[str] | None = None) -> str:
        """Rebuild the text, with other sentences (e.g. translations) in place of the originals."""
        parts = self.sentences if sentences is None else sentences
        if len(parts) != len(self.sentences):
            raise ValueError(f"expected {len(self.sentences)} sentences, got {len(parts)}")
        out = [self.gaps[0]]
        for sentence, gap in zip(parts, self.gaps[1:]):
            out += [sentence, gap]
        return "".join(out)


def _ends_sentence(before: str, after: str) -> bool:
    """Whether a space between `before` (text up to the space) and `after` (the rest) ends a sentence."""
    core = before.rstrip(CLOSERS)
    if not core or core[-1] not in SENTENCE_END + CJK_END:
        return False
    if after[:1].islower():
        return False
    if core[-1] == ".":
        word = core[:-1].rsplit(None, 1)[-1] if core[:-1].strip() else ""
        word = word.lstrip("(\"'“‘«[").lower()
        if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            return False
    return True


def _boundaries(text: str) -> list[tuple[int, int]]:
    """(start, end) of every gap between two sentences."""
    cuts = []
    for match in _GAP.finditer(text):
        start, end = match.span()
        if start == 0 or end == len(text):
            continue  # leading / trailing whitespace is not between two sentences
        if "\n" in match.group() or "\r" in match.group() or _ends_sentence(text[:start], text[end:]):
            cuts.append((start, end))
    cuts += [(m.start(), m.start()) for m in _CJK_BOUNDARY.finditer(text) if 0 < m.start() < len(text)]
    return sorted(cuts)


def split(text: str) -> Segmented:
    """Sentences (never empty or whitespace-only) and the gaps around them; a blank text has none."""
    stripped = text.strip()
    if not stripped:
        return Segmented([], [text])
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()):]
    body = text[len(lead): len(text) - len(trail)]
    sentences, gaps, pos = [], [lead], 0
    for start, end in _boundaries(body):
        if start < pos:
            continue
        sentences.append(body[pos:start])
        gaps.append(body[start:end])
        pos = end
    sentences.append(body[pos:])
    gaps.append(trail)
    return Segmented(sentences, gaps)
