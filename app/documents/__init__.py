"""Whole documents in, the same documents translated out: .txt, .srt, .html/.htm, .md and .docx.

A document is read into *units*, the pieces of text that are translated each as one whole, and written back from
their translations with everything else left as it was. One module per format, each with how it cuts a document
into units: text.py (.txt), subtitles.py (.srt), markup.py (.html/.htm and .md, through app.markup) and docx.py
(.docx); base.py holds what they share (Document, Unit, limits, errors, file types) and pipeline.py what runs them.

`open_document(data, filename, limits)` parses and checks (no model needed: the service detects the language,
counts the characters against quotas and limits before translating); `translate_units` translates the units in
chunks (each chunk one batch for the service) and reports progress; `Document.render` writes the result.
`translate_document` does all three. Every problem with a file is a `DocumentError`: an ApiError with 400
(unreadable), 413 (too large) or 415 (unsupported type), which the CLI prints as one line.
"""

from app.documents.base import (
    CONTENT_TYPES,
    SUPPORTED_EXTENSIONS,
    Document,
    DocumentError,
    DocumentLimits,
    Progress,
    TranslateText,
    Translators,
    Unit,
    check_type,
    content_type,
    extension,
)
from app.documents.pipeline import open_document, translate_document, translate_units

__all__ = ["CONTENT_TYPES", "SUPPORTED_EXTENSIONS", "Document", "DocumentError", "DocumentLimits", "Progress",
           "TranslateText", "Translators", "Unit", "check_type", "content_type", "extension", "open_document",
           "translate_document", "translate_units"]
