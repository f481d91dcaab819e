"""HTML (.html/.htm) and Markdown (.md): the whole document is one unit, translated by app.markup (tags projected
through the model's attention alignment)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Literal

from app.documents.base import Document, Unit, encode_text


class _VisibleText(HTMLParser):
    """The text of an HTML document outside <script> and <style> (what is counted and detected)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return re.sub(r"\s+", " ", "".join(parser.parts)).strip()


class MarkupDocument(Document):
    """HTML or Markdown: the whole document is one unit for app.markup."""

    def __init__(self, text: str, bom: bool, kind: Literal["html", "markdown"]) -> None:
        self.bom = bom
        plain = html_text(text) if kind == "html" else text.strip()
        self.units = [Unit(plain, text, kind)] if plain else []
        self.original = text

    def render(self, translations: list[str]) -> bytes:
        return encode_text(translations[0] if self.units else self.original, self.bom)
