"""Running a document through translation: open and check it, translate its units chunk by chunk, write it back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator

from app.documents.base import (
    Document,
    DocumentError,
    DocumentLimits,
    Progress,
    Translators,
    Unit,
    check_type,
    decode_text,
)
from app.documents.docx import DocxDocument
from app.documents.markup import MarkupDocument
from app.documents.subtitles import SubtitleDocument
from app.documents.text import TextDocument

CHUNK_UNITS = 32  # units per translation call: one batch for the service, one step of the progress bar
CHUNK_CHARS = 4000


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
