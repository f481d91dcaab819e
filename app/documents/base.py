"""What every document format shares: the Document and its units, the limits, the error, the supported file types,
how units get translated (Translators), and strict UTF-8 for the text formats."""

from __future__ import annotations

import codecs
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Literal

from app.errors import ApiError
from app.markup import TranslateAligned, translate_html, translate_markdown

if TYPE_CHECKING:
    from app.registry import Route
    from app.schemas import DecodeOptions
    from app.service import Content, TranslationService
    from app.settings import Settings

TranslateText = Callable[[list[str]], Awaitable[list[str]]]
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
                     client: str | None = None, content: Content | None = None) -> Translators:
        """Both along one route of the service, for one client (its fair share of the batcher), with the
        service's placeholder protection and glossaries (the pair's file, and `content`'s own)."""
        from app.service import Content  # app.service imports app.markup, as this module does: no cycle, but late

        content = content or Content()

        async def text(texts: list[str]) -> list[str]:
            return [item.text for item in await service.translate_content(texts, route, options, content,
                                                                          client=client)]

        return cls(text, service.aligned_with_terms(route, options, content, client))

    async def html(self, html: str) -> str:
        return await translate_html(html, self.aligned)

    async def markdown(self, text: str) -> str:
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
