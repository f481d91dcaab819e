"""Whole documents in, the same documents translated out: .txt, .srt, .html/.htm, .md and .docx.

A document is read into *units*, the pieces of text that are translated each as one whole, and written back from
their translations with everything else left as it was:

- .txt: paragraphs (lines up to a blank line; long ones cut at line breaks); UTF-8, its BOM and its line endings
  (CRLF, LF) kept, as the translation keeps every line break and the whitespace around sentences.
- .srt: each cue's text (parsed with the `srt` library); numbers, timings, blank lines and line endings are the
  original bytes, and the line breaks inside a cue stay. A cue with tags (<i>, <font>) goes through app.markup.
- .html/.htm and .md: the whole document is one unit, translated by app.markup (tags projected through the
  model's attention alignment).
- .docx (python-docx): every paragraph of the body, its tables, the headers and footers. A paragraph's runs are
  its text, translated as one unit; where runs differ in formatting they become an HTML fragment
  `<span data-r="k">run text</span>...` for app.markup, and the translated paragraph is rebuilt from the spans
  that come back, each with run k's formatting (so bold or italic words move with the words they belong to).
  Runs with the same formatting are merged first; line breaks and tabs inside a paragraph stay (the text on
  either side is translated apart). Fields, images, tracked deletions and other non-text runs are left in place
  and cut a paragraph into separately translated stretches; a hyperlink is one span.

`open_document(data, filename, limits)` parses and checks (no model needed: the service detects the language,
counts the characters against quotas and limits before translating); `translate_units` translates the units in
chunks (each chunk one batch for the service) and reports progress; `Document.render` writes the result.
`translate_document` does all three. Every problem with a file is a `DocumentError`: an ApiError with 400
(unreadable), 413 (too large) or 415 (unsupported type), which the CLI prints as one line.
"""

from __future__ import annotations

import asyncio
import codecs
import copy
import io
import re
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import PurePath
from typing import TYPE_CHECKING, Literal

from app.alignment import Alignment
from app.errors import ApiError

if TYPE_CHECKING:
    from docx.oxml.xmlchemy import BaseOxmlElement as Element

    from app.registry import DecodeOptions, Route
    from app.service import TranslationService
    from app.settings import Settings

TranslateText = Callable[[list[str]], Awaitable[list[str]]]
TranslateAligned = Callable[[list[str]], Awaitable[list[Alignment]]]
Progress = Callable[[int], None]  # called with the number of units just translated

CONTENT_TYPES = {
    ".txt": "text/plain; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
SUPPORTED_EXTENSIONS = list(CONTENT_TYPES)  # with the dot, as LibreTranslate's supportedFilesFormat

CHUNK_UNITS = 32  # units per translation call: one batch for the service, one step of the progress bar
CHUNK_CHARS = 4000
MAX_UNIT_CHARS = 2000  # a longer .txt paragraph is cut at line breaks (the translation cuts sentences there anyway)
ZIP_EXPANSION = 25  # a .docx may unpack to at most this many times max_bytes (zip bombs)


class DocumentError(ApiError):
    """A file that cannot be translated: 400 unreadable, 413 too large, 415 unsupported type."""


@dataclass(frozen=True)
class DocumentLimits:
    """Bytes of the file and characters of its text; None = no limit (the CLI)."""

    max_bytes: int | None = None
    max_chars: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentLimits:
        return cls(settings.max_file_bytes, settings.max_file_chars)


@dataclass(frozen=True)
class Unit:
    """One piece translated as a whole: plain text, or markup ("html", "markdown") for app.markup.
    `text` is its plain text (what is counted and detected); `source` what is sent to the translator."""

    text: str
    source: str
    kind: Literal["text", "html", "markdown"] = "text"


@dataclass(frozen=True)
class Translators:
    """How units get translated: `text` for plain texts, `aligned` (texts -> alignments) for the markup
    formats, through app.markup. Both translate into the same language along the same route."""

    text: TranslateText
    aligned: TranslateAligned

    @classmethod
    def from_service(cls, service: TranslationService, route: Route, options: DecodeOptions,
                     client: str | None = None) -> Translators:
        """Both along one route of the service, for one client (its fair share of the batcher)."""

        async def text(texts: list[str]) -> list[str]:
            return [item.text for item in await service.translate(texts, route, options, client=client)]

        async def aligned(texts: list[str]) -> list[Alignment]:
            return await service.translate_aligned(texts, route, options, client)

        return cls(text, aligned)

    async def html(self, html: str) -> str:
        from app.markup import translate_html

        return await translate_html(html, self.aligned)

    async def markdown(self, text: str) -> str:
        from app.markup import translate_markdown

        return await translate_markdown(text, self.aligned)


class Document:
    """A parsed document: its units, and how to write it back from their translations."""

    units: list[Unit]

    @property
    def chars(self) -> int:
        """Characters of text to translate (what limits and quotas count)."""
        return sum(len(unit.text) for unit in self.units)

    def sample(self, chars: int = 2000) -> str:
        """The beginning of the document's text, for language detection."""
        out, size = [], 0
        for unit in self.units:
            if size >= chars:
                break
            out.append(unit.text)
            size += len(unit.text)
        return "\n".join(out)[:chars]

    def render(self, translations: list[str]) -> bytes:
        """The translated document's bytes (one translation per unit)."""
        raise NotImplementedError


def extension(filename: str) -> str:
    """'.docx' of 'C:\\Users\\me\\Report.DOCX' (lower-cased, '' when there is none)."""
    return PurePath(filename.replace("\\", "/")).suffix.lower()


def content_type(filename: str) -> str:
    return CONTENT_TYPES.get(extension(filename), "application/octet-stream")


def check_type(filename: str) -> str:
    """The file's extension, or a 415 when no supported type has it."""
    ext = extension(filename)
    if ext not in CONTENT_TYPES:
        got = f"{ext} files" if ext else "files without an extension"
        raise DocumentError(415, "unsupported_file_type",
                            f"{got} cannot be translated; supported: {', '.join(SUPPORTED_EXTENSIONS)}")
    return ext


def open_document(data: bytes, filename: str, limits: DocumentLimits = DocumentLimits()) -> Document:
    """Parse and check a file (its type from the file name's extension). Raises DocumentError."""
    ext = check_type(filename)
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise DocumentError(413, "file_too_large",
                            f"the file has {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    if not data:
        raise DocumentError(400, "empty_file", f"{filename} is empty")
    if ext == ".docx":
        document: Document = DocxDocument(data, filename, limits)
    else:
        text, bom = decode_text(data, filename)
        if ext == ".txt":
            document = TextDocument(text, bom)
        elif ext == ".srt":
            document = SubtitleDocument(text, bom, filename)
        else:
            document = MarkupDocument(text, bom, "markdown" if ext == ".md" else "html")
    if limits.max_chars is not None and document.chars > limits.max_chars:
        raise DocumentError(413, "too_many_characters", f"the document has {document.chars} characters of text; "
                            f"the limit is {limits.max_chars}")
    return document


async def translate_units(units: list[Unit], translators: Translators,
                          progress: Progress | None = None) -> list[str]:
    """Every unit's translation, in order: chunk by chunk, the plain units of a chunk in one call and its markup
    units concurrently (so the service batches them together); progress after each chunk."""
    out: list[str] = []
    for chunk in chunks(units):
        plain = [unit.source for unit in chunk if unit.kind == "text"]
        jobs: list[Awaitable] = [translators.text(plain)] if plain else []
        jobs += [translators.html(u.source) if u.kind == "html" else translators.markdown(u.source)
                 for u in chunk if u.kind != "text"]
        results = await asyncio.gather(*jobs)
        done_plain = iter(results[0] if plain else [])
        done_markup = iter(results[1:] if plain else results)
        out.extend(next(done_plain) if unit.kind == "text" else next(done_markup) for unit in chunk)
        if progress is not None:
            progress(len(chunk))
    return out


def chunks(units: list[Unit]) -> Iterator[list[Unit]]:
    chunk: list[Unit] = []
    size = 0
    for unit in units:
        if chunk and (len(chunk) >= CHUNK_UNITS or size + len(unit.text) > CHUNK_CHARS):
            yield chunk
            chunk, size = [], 0
        chunk.append(unit)
        size += len(unit.text)
    if chunk:
        yield chunk


async def translate_document(data: bytes, filename: str, translators: Translators,
                             limits: DocumentLimits = DocumentLimits(), progress: Progress | None = None) -> bytes:
    """The translated file: parse, translate the units, write back (parsing and writing off the event loop)."""
    document = await asyncio.to_thread(open_document, data, filename, limits)
    translations = await translate_units(document.units, translators, progress)
    return await asyncio.to_thread(document.render, translations)


# --- text formats ------------------------------------------------------------------------------------------------


def decode_text(data: bytes, filename: str) -> tuple[str, bool]:
    """Strict UTF-8 (a BOM is dropped here and put back by `encode_text`); (text, had a BOM)."""
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data[len(codecs.BOM_UTF8) if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(400, "invalid_encoding", f"{filename} is not UTF-8 text (invalid byte at offset "
                            f"{exc.start}); save it as UTF-8") from None
    if "\x00" in text:
        raise DocumentError(400, "invalid_document", f"{filename} is not a text file (it has NUL bytes)")
    return text, bom


def encode_text(text: str, bom: bool) -> bytes:
    return (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")


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


SRT_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # <i>, <b>, <u>, <font color="...">
SRT_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SubtitleDocument(Document):
    """SubRip: each cue's text is a unit; the rest of the file is kept byte for byte. A cue with tags (<i>...</i>)
    goes through app.markup, its line breaks as <br> (each one ends a sentence, as in plain text)."""

    def __init__(self, text: str, bom: bool, filename: str) -> None:
        import srt

        try:
            cues = list(srt.parse(text))
        except (srt.SRTParseError, ValueError) as exc:
            raise DocumentError(400, "invalid_document", f"{filename} is not a valid SubRip file: "
                                f"{str(exc).splitlines()[0][:300]}") from None
        spans = [m.span(5) for m in srt.SRT_REGEX.finditer(text)]  # group 5: the cue's text, as in the file
        if len(spans) != len(cues):  # cannot happen: srt.parse walks the same matches
            raise DocumentError(400, "invalid_document", f"{filename}: could not locate every subtitle")
        self.text, self.bom = text, bom
        self.spans = [(a, b) for a, b in spans if text[a:b].strip()]
        self.units = [self.cue_unit(text[a:b]) for a, b in self.spans]

    @staticmethod
    def cue_unit(cue: str) -> Unit:
        if not SRT_TAG.search(cue):
            return Unit(cue, cue)
        source = SRT_LINE_BREAK.sub("<br>", cue.replace("&", "&amp;"))
        return Unit(SRT_TAG.sub("", cue), source, "html")

    def render(self, translations: list[str]) -> bytes:
        out, pos = [], 0
        for (a, b), unit, translated in zip(self.spans, self.units, translations):
            if unit.kind == "html":
                line_break = SRT_LINE_BREAK.search(self.text[a:b])
                translated = unescape(translated.replace("<br>", line_break.group() if line_break else "\n"))
            out += [self.text[pos:a], translated]
            pos = b
        out.append(self.text[pos:])
        return encode_text("".join(out), self.bom)


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


# --- .docx -------------------------------------------------------------------------------------------------------

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
