"""The text of a unit of markup as it is sent to the model, built while its markup is cut into `Piece`s (used by
app/html_doc.py and app/markdown_doc.py).

Entities are decoded and whitespace runs made one space. Characters the input wrote as entities (&copy; &#8212;)
are remembered and written back the same way. Each void (<br>, <img>, inline code...) is placed between the
characters around it: glued to the word before it, or spaced like a word; one between a space and closing
punctuation ("see <code>x</code>.") is shown to the model as "see." rather than "see .".
"""

from __future__ import annotations

import html as htmllib
import re

from app.projection import Piece

CLOSING = frozenset(".,;:!?)]}»”’…%")  # punctuation that ends the word before it
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")


class UnitText:
    """The text of a unit as it is sent to the model: entities decoded, whitespace runs made one space."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.pending = False  # whitespace seen since the last character
        self.entities: dict[str, str] = {}  # a character the input wrote as an entity -> that entity
        self.waiting: list[Piece] = []  # voids with no character after them yet
        self.space_after_void = False  # whitespace seen since the last void

    def add(self, raw: str, decode: bool = True) -> None:
        """Add text as written in HTML (entities decoded, and remembered) or, with decode=False, as it is."""
        for match in _ENTITY.finditer(raw) if decode else ():
            char = htmllib.unescape(match.group())
            if len(char) == 1 and match.group().endswith(";") and not char.isalnum() and not char.isspace():
                self.entities[char] = match.group()
        for char in htmllib.unescape(raw) if decode else raw:
            if char.isspace():
                self.pending = self.space_after_void = True
                continue
            # a void between a space and closing punctuation ("see `x`.") leaves "see." to the model, not "see ."
            tight = self.waiting and self.pending and not self.space_after_void and char in CLOSING and self.chars
            for void in self.waiting:
                void.spaced = void.spaced and self.space_after_void
                if tight:
                    void.start = void.end = len(self.chars)
            self.pending = self.pending and not tight
            self.waiting.clear()
            if self.pending and self.chars:
                self.chars.append(" ")
            self.chars.append(char)
            self.pending = False

    def void(self, markup: str, breaks: bool = False) -> Piece:
        """A void at the current position; one that `breaks` (<br>) also ends the word before it."""
        at, before = self.position, not self.chars or self.pending
        piece = Piece(markup, start=at, end=at, void=True, glued=not before, spaced=before and not breaks,
                      breaks=breaks)
        self.pending = self.pending or breaks
        self.waiting.append(piece)
        self.space_after_void = False
        return piece

    @property
    def position(self) -> int:
        """Where the next character will go."""
        return len(self.chars) + (1 if self.pending and self.chars else 0)

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def escape(self, text: str) -> str:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for char, entity in self.entities.items():
            if char not in "&<>":
                text = text.replace(char, entity)
        return text
