"""SubRip subtitles (.srt): each cue's text (parsed with the `srt` library) is a unit; numbers, timings, blank lines
and line endings are the original bytes. A cue's lines usually break one sentence in two, so the cue is translated
as one line and the translation is broken again into as many lines, at the spaces that balance their lengths. A cue
with tags (<i>, <font>) goes through app.markup."""

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
        one_line = SRT_LINE_BREAK.sub(" ", cue)
        if not SRT_TAG.search(cue):
            return Unit(one_line, one_line)
        return Unit(SRT_TAG.sub("", one_line), one_line.replace("&", "&amp;"), "html")

    def render(self, translations: list[str]) -> bytes:
        out, pos = [], 0
        for (a, b), unit, translated in zip(self.spans, self.units, translations):
            if unit.kind == "html":
                translated = unescape(translated)
            cue = self.text[a:b]
            line_break = SRT_LINE_BREAK.search(cue)
            lines = len(SRT_LINE_BREAK.split(cue.strip()))
            out += [self.text[pos:a], rewrap(translated, lines, line_break.group() if line_break else "\n")]
            pos = b
        out.append(self.text[pos:])
        return encode_text("".join(out), self.bom)


def rewrap(text: str, lines: int, line_break: str) -> str:
    """`text` on `lines` lines (fewer if it has fewer words), broken at spaces outside tags so that the lines are
    about equally long."""
    words = [w for w in re.split(r" +(?![^<>]*>)", text.strip()) if w]
    if lines <= 1 or len(words) < 2:
        return text.strip()
    out: list[str] = []
    while len(out) < lines - 1 and len(words) > 1:
        share = len(" ".join(words)) / (lines - len(out))
        lengths = [len(" ".join(words[:i])) for i in range(1, len(words))]
        cut = 1 + min(range(len(lengths)), key=lambda i: abs(lengths[i] - share))
        out.append(" ".join(words[:cut]))
        words = words[cut:]
    return line_break.join([*out, " ".join(words)])
