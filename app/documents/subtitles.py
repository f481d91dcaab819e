"""SubRip subtitles (.srt): each cue's text (parsed with the `srt` library) is a unit; numbers, timings, blank lines
and line endings are the original bytes, and the line breaks inside a cue stay. A cue with tags (<i>, <font>) goes
through app.markup."""

from __future__ import annotations

import re
from html import unescape

from app.documents.base import Document, DocumentError, Unit, encode_text

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
