"""Word documents (.docx, through python-docx): every paragraph of the body, its tables, the headers and footers.

A paragraph's runs are its text, translated as one unit; where runs differ in formatting they become an HTML
fragment `<span data-r="k">run text</span>...` for app.markup, and the translated paragraph is rebuilt from the
spans that come back, each with run k's formatting (so bold or italic words move with the words they belong to).
Runs with the same formatting are merged first; line breaks and tabs inside a paragraph stay (the text on either
side is translated apart). Fields, images, tracked deletions and other non-text runs are left in place and cut a
paragraph into separately translated stretches; a hyperlink is one span.
"""

from __future__ import annotations

import copy
import io
import re
import zipfile
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from app.documents.base import Document, DocumentError, DocumentLimits, Unit

if TYPE_CHECKING:
    from docx.oxml.xmlchemy import BaseOxmlElement as Element

ZIP_EXPANSION = 25  # a .docx may unpack to at most this many times max_bytes (zip bombs)
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# What a run may hold and still be text: its properties, text, tabs, line breaks, hyphens, layout marks.
RUN_TEXT = {f"{W}{tag}" for tag in ("rPr", "t", "tab", "br", "cr", "noBreakHyphen", "softHyphen", "ptab",
                                     "lastRenderedPageBreak")}
# Inline containers whose runs are translated as stretches of their own.
CONTAINERS = {f"{W}{tag}" for tag in ("ins", "moveTo", "smartTag", "customXml", "sdt", "sdtContent", "fldSimple",
                                      "hyperlink")}
# Marks between runs that neither hold text nor cut a stretch (they stay where they are).
MARKS = {f"{W}{tag}" for tag in ("pPr", "proofErr", "bookmarkStart", "bookmarkEnd", "commentRangeStart",
                                  "commentRangeEnd", "permStart", "permEnd")}


def is_text_run(element: Element) -> bool:
    """A w:r of text only (no picture, field code, page or column break, note reference...), maybe empty."""
    if element.tag != f"{W}r":
        return False
    return all(child.tag in RUN_TEXT and (child.tag != f"{W}br" or child.get(f"{W}type") in (None, "textWrapping"))
               for child in element)


def element_text(element: Element) -> str:
    return element.text if element.tag == f"{W}r" else "".join(r.text for r in element.iterchildren(f"{W}r"))


def is_text_link(element: Element) -> bool:
    """A w:hyperlink of text runs only: kept whole, as one span."""
    runs = [c for c in element if c.tag not in MARKS]
    return element.tag == f"{W}hyperlink" and bool(runs) and all(is_text_run(r) for r in runs)


@dataclass
class Group:
    """Consecutive elements of a stretch with the same formatting: one span of the HTML fragment."""

    template: Element  # the first w:r (or w:hyperlink): what new elements copy
    text: str = ""

    def make(self, text: str) -> Element:
        """A new element with the template's formatting holding `text`."""
        new = copy.deepcopy(self.template)
        if new.tag == f"{W}r":
            new.text = text  # python-docx: clears all but w:rPr, writes w:t, w:tab and w:br
            return new
        first_run = next(new.iterchildren(f"{W}r"))
        for child in list(new):
            new.remove(child)
        first_run.text = text
        new.append(first_run)
        return new


@dataclass
class Stretch:
    """Sibling elements of a paragraph translated as one text."""

    elements: list[Element] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    def add(self, element: Element) -> None:
        self.elements.append(element)
        key = format_key(element)
        if self.groups and key is not None and key == format_key(self.groups[-1].template):
            self.groups[-1].text += element_text(element)
        else:
            self.groups.append(Group(element, element_text(element)))

    @property
    def text(self) -> str:
        return "".join(g.text for g in self.groups)

    def unit(self) -> Unit:
        """Plain text when the stretch has one formatting and no tab; else the HTML fragment for app.markup. A
        line break or a tab is a <br data-r="k"> between the spans (with data-tab="" for a tab): it ends a unit for
        app.markup, so the text on either side is translated apart, as plain text is cut at line breaks (a tab
        separates fields: "Date:<tab>May 5", a table of contents' page numbers)."""
        text = self.text
        if len(self.groups) == 1 and "\t" not in text:
            return Unit(text, text)
        html = []
        for k, group in enumerate(self.groups):
            for piece in re.split(r"([\t\n])", group.text):
                if piece in ("\t", "\n"):  # the break keeps its run's formatting (an underlined tab...)
                    tab = ' data-tab=""' if piece == "\t" else ""
                    html.append(f'<br data-r="{k}"{tab}>')
                elif piece:
                    html.append(f'<span data-r="{k}">{escape(piece, quote=False)}</span>')
        return Unit(text, "".join(html), "html")

    def replace(self, translated: str, kind: str) -> None:
        pieces = [(0, translated)] if kind == "text" else span_pieces(translated, len(self.groups))
        parent = self.elements[0].getparent()
        at = parent.index(self.elements[0])
        for element in self.elements:
            parent.remove(element)
        for k, text in pieces:
            if text:
                parent.insert(at, self.groups[k].make(text))
                at += 1


def format_key(element: Element) -> bytes | None:
    """Runs with equal keys merge (same w:rPr); a hyperlink never merges."""
    if element.tag != f"{W}r":
        return None
    from lxml import etree

    rpr = element.find(f"{W}rPr")
    return b"" if rpr is None else etree.tostring(rpr)


def stretches(paragraph: Element) -> list[Stretch]:
    """The paragraph's stretches with text, in document order."""
    found: list[Stretch] = []

    def walk(parent: Element) -> None:
        current = Stretch()
        field_depth = 0  # inside a complex field (w:fldChar begin ... end): its code and result stay as they are
        for child in parent:
            if child.tag == f"{W}r":
                for mark in child.iterchildren(f"{W}fldChar"):
                    field_depth += {"begin": 1, "end": -1}.get(mark.get(f"{W}fldCharType"), 0)
            text = field_depth == 0 and (is_text_run(child) or is_text_link(child))
            if child.tag in MARKS or (text and not element_text(child)):
                continue  # an empty run neither cuts a stretch nor joins it
            if text:
                current.add(child)
                continue
            if current.elements:
                found.append(current)
            current = Stretch()
            if child.tag in CONTAINERS and field_depth == 0:
                walk(child)
        if current.elements:
            found.append(current)

    walk(paragraph)
    return [s for s in found if s.text.strip()]


class _SpanReader(HTMLParser):
    """(span number, text) pieces of a translated fragment; text outside any span joins its neighbour's."""

    def __init__(self, groups: int) -> None:
        super().__init__(convert_charrefs=True)
        self.groups = groups
        self.stack: list[int | None] = []
        self.pieces: list[tuple[int | None, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        value = found.get("data-r") or ""
        k = int(value) if value.isdigit() and int(value) < self.groups else None
        if tag == "br":
            self.stack.append(k)
            self.handle_data("\t" if "data-tab" in found else "\n")
            self.stack.pop()
        elif tag == "span":
            self.stack.append(k)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        k = next((k for k in reversed(self.stack) if k is not None), None)
        self.pieces.append((k, data))


def span_pieces(fragment: str, groups: int) -> list[tuple[int, str]]:
    reader = _SpanReader(groups)
    reader.feed(fragment)
    reader.close()
    known = [k for k, _ in reader.pieces if k is not None]
    last = known[0] if known else 0
    out: list[tuple[int, str]] = []
    for k, text in reader.pieces:
        last = last if k is None else k
        if out and out[-1][0] == last:
            out[-1] = (last, out[-1][1] + text)
        else:
            out.append((last, text))
    return out


class DocxDocument(Document):
    """A Word document: the paragraphs of the body (tables included), headers and footers."""

    def __init__(self, data: bytes, filename: str, limits: DocumentLimits) -> None:
        import docx
        from docx.parts.hdrftr import FooterPart, HeaderPart

        if data.startswith(b"\xd0\xcf\x11\xe0"):
            raise DocumentError(400, "encrypted_document", f"{filename} is password-protected, or an old binary "
                                "Word file (.doc); save it as a .docx without a password")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                unpacked = sum(info.file_size for info in archive.infolist())
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            raise DocumentError(400, "invalid_document", f"{filename} is not a .docx file (not a zip archive, "
                                "or a damaged one)") from None
        if limits.max_bytes is not None and unpacked > ZIP_EXPANSION * limits.max_bytes:
            raise DocumentError(413, "file_too_large", f"{filename} unpacks to {unpacked} bytes; the limit is "
                                f"{ZIP_EXPANSION * limits.max_bytes} bytes")
        if "word/document.xml" not in names:
            raise DocumentError(400, "invalid_document", f"{filename} is not a Word document (it has no "
                                "word/document.xml)")
        try:
            self.document = docx.Document(io.BytesIO(data))  # parses every part it knows, headers included
        except Exception as exc:  # noqa: BLE001 - a damaged file fails anywhere in zipfile, lxml or python-docx
            raise DocumentError(400, "invalid_document", f"{filename} is not a valid .docx file: "
                                f"{type(exc).__name__}: {str(exc)[:300]}") from None
        parts = [part for part in self.document.part.package.iter_parts() if isinstance(part, (HeaderPart, FooterPart))]
        roots = [self.document.element.body, *(part.element for part in parts)]
        self.stretches = [s for root in roots for p in root.iter(f"{W}p") for s in stretches(p)]
        self.units = [s.unit() for s in self.stretches]

    def render(self, translations: list[str]) -> bytes:
        for stretch, unit, translated in zip(self.stretches, self.units, translations):
            stretch.replace(translated, unit.kind)
        out = io.BytesIO()
        self.document.save(out)
        return out.getvalue()
