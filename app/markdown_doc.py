"""Translate Markdown without breaking it: the text of paragraphs, headings, list items, table cells, link texts
and image alt texts is translated; everything else is left as written.

Parsing is markdown-it-py's (CommonMark, with GFM tables and strikethrough, and front matter through
mdit-py-plugins): the reference Python port of markdown-it, kept by the Executable Books project. Writing
back does not re-render the document: each block's inline text is found in the input through the token's line
map, and only that text is replaced, so front matter, code blocks, indentation, list markers, link reference
definitions and everything else stay byte for byte. Inside a text, markdown-it's inline tokens are matched
back onto the input (escapes, entities and all: app/markdown_inline.py) to get each marker as written;
emphasis, strikethrough, links with their URL (as written, titles included) and paired inline HTML tags are
projected onto the translation like HTML inline tags (app/projection.py); code spans, images, autolinks,
reference links whose text is their label (`[label]`, `[label][]`) and lone inline HTML are put back whole where
their neighbours went. A hard line break ends a text, as <br> does in HTML. HTML blocks go through
translate_html. A text whose tokens cannot be matched back onto the input is left untranslated rather than risk
breaking it.

Translated text is escaped for Markdown (\\ ` * _ [ ] < ~, and | in tables); a paragraph that would start with a
block marker (#, >, -, +, =, "1.") has it escaped. A paragraph of several lines comes back on one line.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from app.alignment import Alignment, words
from app.html_doc import translate_html
from app.markdown_inline import MARKERS, bracket_end, destination_end, match_tokens
from app.markup import MarkupError, TranslateAligned
from app.projection import Piece, project
from app.unit_text import UnitText

_HTML_OPEN = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)\b[^>]*(?<!/)>\Z")
_HTML_CLOSE = re.compile(r"</([A-Za-z][A-Za-z0-9-]*)\s*>\Z")
_BLOCK_START = re.compile(r"(#|>|[-+=])|\d{1,9}([.)])")
_ESCAPED = re.compile(r"([\\`*_\[\]<~])")


def parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).use(front_matter_plugin)


@dataclass
class Unit:
    """One text to translate: where it is in the input, and the inline tokens it is made of."""

    start: int
    end: int
    raw: str  # the text as written (container prefixes of continuation lines removed)
    tokens: list[tuple[Token, int, int]]  # token, its [start, end) in raw
    table: bool = False
    paragraph: bool = False
    text: str = ""
    images: list[Token] = field(default_factory=list)  # images whose alt text is translated

class MarkdownDocument:
    """One Markdown text: its units and HTML blocks, found through markdown-it's tokens and line map."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)] + [len(text) + 1]
        try:
            tokens = parser().parse(text)
        except Exception as exc:  # markdown-it-py does not raise on any text; a bug there is still a bad input
            raise MarkupError(f"cannot parse the Markdown: {exc}") from exc
        self.units: list[Unit] = []
        self.html_blocks: list[tuple[int, int, str]] = []
        self.cursor: dict[int, int] = {}  # line -> the column after the last text found on it (table rows)
        for previous, token in zip([None, *tokens], tokens):
            if token.type == "inline" and token.map and any(c.isalpha() for c in token.content):
                self._add_inline(token, previous.type if previous else "")
            elif token.type == "html_block" and token.map:
                start, end = self.line_starts[token.map[0]], min(self.line_starts[token.map[1]], len(text))
                if text[start:end] == token.content:
                    self.html_blocks.append((start, end, token.content))

    def _segments(self, token: Token, table: bool) -> list[tuple[int, int]] | None:
        """Where each line of the token's content is in the input: at the end of its line (after the container
        prefixes: "> ", "- ", "## "...), else the first place after the texts found before it (a table cell, a
        heading with closing #s)."""
        out = []
        for k, line in enumerate(token.content.split("\n")):
            row = token.map[0] + k
            if row + 1 >= len(self.line_starts):
                return None
            raw = self.text[self.line_starts[row]: self.line_starts[row + 1] - 1]
            for variant in dict.fromkeys([line, line.replace("|", "\\|")]):
                tail = len(raw.rstrip()) - len(variant.rstrip())
                at = tail if not table and tail >= 0 and raw[tail:].startswith(variant) else -1
                at = at if at >= 0 else raw.find(variant, self.cursor.get(row, 0))
                if at >= 0:
                    break
            else:
                return None
            self.cursor[row] = at + len(variant)
            out.append((self.line_starts[row] + at, self.line_starts[row] + at + len(variant)))
        return out

    def _add_inline(self, token: Token, parent: str) -> None:
        table = parent in ("th_open", "td_open")
        segments = self._segments(token, table)
        if not segments:
            return
        raw = "\n".join(self.text[a:b] for a, b in segments)
        matched = match_tokens(raw, token.children or [])
        if matched is None:
            return

        def to_input(offset: int) -> int:
            for (a, b), base in zip(segments, _bases(segments)):
                if offset <= base + b - a:
                    return a + offset - base
            return segments[-1][1]

        group: list[tuple[Token, int, int]] = []
        depth = 0
        for item in [*matched, None]:
            depth += item[0].nesting if item else 0
            if item is not None and (item[0].type != "hardbreak" or depth):
                group.append(item)
                continue
            if any(t.type in ("text", "image") and any(c.isalpha() for c in t.content) for t, _, _ in group):
                start, end = group[0][1], group[-1][2]
                lead = len(raw[start:end]) - len(raw[start:end].lstrip())
                tail = len(raw[start:end]) - len(raw[start:end].rstrip())
                self.units.append(Unit(to_input(start + lead), to_input(end - tail), raw, group, table=table,
                                       paragraph=parent == "paragraph_open"))
            group = []

    # -- writing ----------------------------------------------------------------------------------------------
    def pieces(self, unit: Unit, text: UnitText, alts: dict[int, str] | None) -> list[Piece]:
        """The unit's markup as pieces, its text added to `text`. `alts`: translated image alts by token id;
        None the first time, which lists the images whose alt is to be translated in `unit.images`."""
        pairs = _html_pairs(unit.tokens)
        stack: list[tuple[Piece, list[Piece], object]] = []  # an open piece, its parent's list, what closes it
        pieces: list[Piece] = []
        current = pieces
        skip_to: Token | None = None
        for k, (token, start, end) in enumerate(unit.tokens):
            raw, kind = unit.raw[start:end], token.type
            if skip_to is not None:
                skip_to = None if token is skip_to else skip_to
                continue
            if kind == "text":
                text.add(token.content, decode=False)
            elif kind in ("softbreak", "hardbreak"):
                text.add(" ", decode=False)
            elif kind in MARKERS and kind.endswith("_open") or k in pairs \
                    or kind == "link_open" and token.markup != "autolink" and _link_kind(unit, k) != "label":
                piece = Piece(raw, start=text.position, keep_empty=kind != "link_open" and k not in pairs)
                current.append(piece)
                stack.append((piece, current, pairs.get(k, kind.replace("_open", "_close"))))
                current = piece.children
            elif kind in MARKERS or kind == "link_close" or k in pairs.values():
                if not stack or stack[-1][2] != (k if kind == "html_inline" else kind):
                    raise _Unmatched(kind)
                piece, current, _ = stack.pop()
                piece.close, piece.end = raw, len(text.chars)
            elif kind == "link_open":  # an autolink, or its text is the reference label: kept whole
                skip_to = _closing(unit.tokens, k)
                close_end = next(e for t, _, e in unit.tokens if t is skip_to)
                current.append(text.void(unit.raw[start:close_end]))
            elif kind == "image" and _image_kind(unit, start) != "label" and any(c.isalpha() for c in token.content):
                if alts is None:
                    unit.images.append(token)
                label = bracket_end(unit.raw, start + 1) or start + 2
                alt = alts.get(id(token)) if alts else None
                written = raw if alt is None else "![" + self.escape(unit)(alt) + unit.raw[label - 1: end]
                current.append(text.void(written))
            else:  # a code span, an image, lone inline HTML
                current.append(text.void(raw))
        if stack:
            raise _Unmatched("unclosed")
        return pieces

    def escape(self, unit: Unit) -> Callable[[str], str]:
        def escape(text: str) -> str:
            text = re.sub(r"&(?=#?\w+;)", "\\&", _ESCAPED.sub(r"\\\1", text))
            return text.replace("|", "\\|") if unit.table else text
        return escape

    def render(self, unit: Unit, alignment: Alignment, alts: dict[int, str]) -> str:
        text = UnitText()
        pieces = self.pieces(unit, text, alts)
        if alignment.source != text.text:
            alignment = Alignment(text.text, alignment.target, words(text.text), alignment.target_words, [])
        out = project(alignment, pieces, self.escape(unit))
        marker = _BLOCK_START.match(out) if unit.paragraph else None
        if marker:
            at = marker.start(2) if marker.group(2) else 0
            out = out[:at] + "\\" + out[at:]
        return out


async def translate_markdown(text: str, translate: TranslateAligned) -> str:
    """Markdown with its text translated and its markup kept (see the module docstring)."""
    crlf = "\r\n" in text
    source = text.replace("\r\n", "\n") if crlf else text
    document = MarkdownDocument(source)
    units = []
    for unit in document.units:
        try:
            probe = UnitText()
            document.pieces(unit, probe, None)
        except (_Unmatched, ValueError, StopIteration):
            continue  # tokens that do not nest as written: left as it is
        unit.text = probe.text
        units.append(unit)
    images = [image for unit in units for image in unit.images]
    worded = [unit for unit in units if any(c.isalpha() for c in unit.text)]  # not just an image
    texts = [unit.text for unit in worded] + [image.content for image in images]
    found = await asyncio.gather(translate(texts) if texts else _nothing(),
                                 *(translate_html(block, translate) for _, _, block in document.html_blocks))
    aligned, html_blocks = found[0], found[1:]
    if len(aligned) != len(texts):
        raise RuntimeError(f"{len(texts)} texts to translate, {len(aligned)} translations")
    alts = {id(image): a.target for image, a in zip(images, aligned[len(worded):])}
    by_unit = {id(u): a for u, a in zip(worded, aligned)}
    edits = [(u.start, u.end, document.render(u, by_unit.get(id(u)) or _unchanged(u.text), alts)) for u in units]
    edits += [(start, end, html) for (start, end, _), html in zip(document.html_blocks, html_blocks)]
    out, cursor = [], 0
    for start, end, replacement in sorted(edits):
        out += [source[cursor:start], replacement]
        cursor = end
    out.append(source[cursor:])
    result = "".join(out)
    return result.replace("\n", "\r\n") if crlf else result


def _unchanged(text: str) -> Alignment:
    """The alignment of a text with itself (a text with no letters, kept as it is)."""
    spans = words(text)
    return Alignment(text, text, spans, spans, [[float(i == j) for i in range(len(spans))] for j in range(len(spans))])


async def _nothing() -> list[Alignment]:
    return []


class _Unmatched(Exception):
    """Inline tokens that do not nest the way they were written."""


def _bases(segments: list[tuple[int, int]]) -> list[int]:
    """Where each segment starts in the raw text (segments joined with "\\n")."""
    bases, at = [], 0
    for a, b in segments:
        bases.append(at)
        at += b - a + 1
    return bases


def _closing(tokens: list[tuple[Token, int, int]], k: int) -> Token:
    depth = 0
    for token, _, _ in tokens[k:]:
        depth += token.nesting
        if token.type == "link_close" and depth == 0:
            return token
    raise ValueError("unclosed link")


def _image_kind(unit: Unit, start: int) -> str:
    label = bracket_end(unit.raw, start + 1)
    found = destination_end(unit.raw, label) if label else None
    return found[1] if found else "label"


def _link_kind(unit: Unit, k: int) -> str:
    close = _closing(unit.tokens, k)
    _, start, _ = next(item for item in unit.tokens if item[0] is close)
    found = destination_end(unit.raw, start + 1)
    return found[1] if found else "label"


def _html_pairs(tokens: list[tuple[Token, int, int]]) -> dict[int, int]:
    """Inline HTML tags that open and close an element in the same text: index of the opening -> of the closing."""
    pairs, stack = {}, []
    for k, (token, _, _) in enumerate(tokens):
        if token.type != "html_inline":
            continue
        opening, closing = _HTML_OPEN.match(token.content), _HTML_CLOSE.match(token.content)
        if opening:
            stack.append((opening.group(1).lower(), k))
        elif closing:
            name = closing.group(1).lower()
            if stack and stack[-1][0] == name:
                pairs[stack.pop()[1]] = k
    return pairs
