"""Plain text (.txt): paragraphs (lines up to a blank line; long ones cut at line breaks) are the units; UTF-8, its
BOM and its line endings (CRLF, LF) kept, as the translation keeps every line break and the whitespace around
sentences."""

from __future__ import annotations

import re

from app.documents.base import Document, Unit, encode_text

MAX_UNIT_CHARS = 2000  # a longer .txt paragraph is cut at line breaks (the translation cuts sentences there anyway)
_PARAGRAPH_BREAK = re.compile(r"((?:\r\n|\r|\n)(?:[ \t\f\v]*(?:\r\n|\r|\n))+)")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")


class TextDocument(Document):
    """Plain text: paragraphs between blank lines; everything between them kept byte for byte."""

    def __init__(self, text: str, bom: bool) -> None:
        self.bom = bom
        self.parts: list[str] = []  # the text, cut into pieces: units and what lies between them
        self.unit_parts: list[int] = []
        for i, piece in enumerate(_PARAGRAPH_BREAK.split(text)):
            if i % 2 or not piece.strip():
                self.parts.append(piece)
                continue
            for block in line_blocks(piece, MAX_UNIT_CHARS):
                self.unit_parts.append(len(self.parts))
                self.parts.append(block)
        self.units = [Unit(self.parts[i], self.parts[i]) for i in self.unit_parts]

    def render(self, translations: list[str]) -> bytes:
        parts = list(self.parts)
        for i, translated in zip(self.unit_parts, translations):
            parts[i] = translated
        return encode_text("".join(parts), self.bom)


def line_blocks(paragraph: str, max_chars: int) -> list[str]:
    """A paragraph as consecutive blocks of whole lines, each at most max_chars long when its lines allow."""
    blocks: list[str] = []
    for line in _LINE.findall(paragraph):
        if blocks and len(blocks[-1]) + len(line) <= max_chars:
            blocks[-1] += line
        elif line:
            blocks.append(line)
    return blocks
