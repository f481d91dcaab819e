"""Translate HTML and Markdown without breaking their markup: the entry points, and the error for markup that
cannot be repaired.

A block of text and its inline markup (<b>, <a>, **, [links]...) are one unit: its text, markup removed, is
translated as one text, and each inline element is put back around the target words that its source words
aligned to, through the model's own attention (as Bergamot projects tags). Everything outside the units is
copied as written. The parts, each in its own file:
- app/html_tree.py: HTML parsed into a tree that knows where each node is in the input;
- app/html_doc.py: HTML's units and attributes to translate, and the translation written back;
- app/markdown_doc.py: the same for Markdown, through markdown-it-py;
- app/unit_text.py: the text of a unit as the model sees it, with the places of the markup in it;
- app/monotone.py and app/projection.py: where each piece of markup goes in the translation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.alignment import Alignment
from app.monotone import monotone_links
from app.projection import Piece, project
from model.errors import InputError

__all__ = ["MarkupError", "Piece", "TranslateAligned", "monotone_links", "project", "translate_html",
           "translate_markdown"]

TranslateAligned = Callable[[list[str]], Awaitable[list[Alignment]]]


class MarkupError(InputError):
    """Malformed markup that cannot be repaired; the API answers 400 with its message."""

    code = "bad_markup"


async def translate_html(html: str, translate: TranslateAligned) -> str:
    """`html` (a fragment or a whole document) with its text translated and its markup kept (see app/html_doc.py)."""
    from app.html_doc import translate_html as translate_document  # here: app/html_doc.py imports this module

    return await translate_document(html, translate)


async def translate_markdown(text: str, translate: TranslateAligned) -> str:
    """Markdown with its text translated and its markup kept (see app/markdown_doc.py)."""
    from app.markdown_doc import translate_markdown as translate_md  # here: it imports this module

    return await translate_md(text, translate)
