"""markdown-it's inline tokens matched back onto the text they were parsed from (used by app/markdown_doc.py).

markdown-it decodes escapes and entities and does not say where a token starts, so each token is found in the
text as written, one after the other: a text token through its escapes and entities, an emphasis marker, a code
span, inline HTML, a link's "[" and its "](url "title")" or "[ref]", an image whole. What cannot be matched
(a token markdown-it read differently) makes the whole text unmatched: the caller leaves it as it is.
"""

from __future__ import annotations

import html as htmllib
import re
from string import punctuation

from markdown_it.token import Token

MARKERS = {"em_open", "em_close", "strong_open", "strong_close", "s_open", "s_close"}
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_BREAK = re.compile(r"[ \t]*\\?\n[ \t]*")


def consume_text(raw: str, pos: int, text: str) -> int | None:
    """Where `text` (as markdown-it decoded it) ends in raw from pos: escapes and entities as written."""
    k = 0
    while k < len(text):
        entity = _ENTITY.match(raw, pos) if raw.startswith("&", pos) else None
        decoded = htmllib.unescape(entity.group()) if entity else ""
        if entity and decoded != entity.group() and text.startswith(decoded, k):
            pos, k = entity.end(), k + len(decoded)
        elif raw.startswith("\\", pos) and raw[pos + 1: pos + 2] == text[k] and text[k] in punctuation:
            pos, k = pos + 2, k + 1
        elif raw[pos: pos + 1] == text[k]:
            pos, k = pos + 1, k + 1
        else:
            return None
    return pos


def destination_end(raw: str, pos: int) -> tuple[int, str] | None:
    """The end of what follows a link's or an image's text at pos, and its kind: "inline" ((url "title")),
    "full" ([ref]), or "label" ([], or nothing: the text is the reference label)."""
    if raw.startswith("(", pos):
        depth, quote, i = 1, "", pos + 1
        while i < len(raw):
            c = raw[i]
            if c == "\\":
                i += 1
            elif quote:
                quote = "" if c == quote else quote
            elif c in "\"'" and raw[i - 1].isspace():
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if not depth:
                    return i + 1, "inline"
            i += 1
        return None
    if raw.startswith("[", pos):
        end = raw.find("]", pos)
        return (end + 1, "full" if end > pos + 1 else "label") if end > 0 else None
    return pos, "label"


def bracket_end(raw: str, pos: int) -> int | None:
    """The offset after the "]" closing the "[" at pos."""
    depth, i = 0, pos
    while i < len(raw):
        if raw[i] == "\\":
            i += 1
        elif raw[i] == "[":
            depth += 1
        elif raw[i] == "]":
            depth -= 1
            if not depth:
                return i + 1
        i += 1
    return None


def match_tokens(raw: str, children: list[Token]) -> list[tuple[Token, int, int]] | None:
    """Each inline token with the part of raw it was parsed from, or None where they do not match."""
    out, pos, autolink = [], 0, False
    for token in children:
        start, end = pos, None
        kind = token.type
        if autolink:
            end, autolink = pos, kind != "link_close"
        elif kind == "text":
            end = consume_text(raw, pos, token.content)
        elif kind in ("softbreak", "hardbreak"):
            found = _BREAK.match(raw, pos)
            end = found.end() if found else None
        elif kind in MARKERS:
            end = pos + len(token.markup) if raw.startswith(token.markup, pos) else None
        elif kind == "code_inline":
            found = re.compile(rf"(?<!`){re.escape(token.markup)}(?!`)").search(raw, pos + len(token.markup))
            end = found.end() if raw.startswith(token.markup, pos) and found else None
        elif kind == "html_inline":
            end = pos + len(token.content) if raw.startswith(token.content, pos) else None
        elif kind == "link_open" and token.markup == "autolink":
            close = raw.find(">", pos)
            end, autolink = (close + 1 if raw.startswith("<", pos) and close > 0 else None), True
        elif kind == "link_open":
            end = pos + 1 if raw.startswith("[", pos) else None
        elif kind == "link_close":
            after = destination_end(raw, pos + 1) if raw.startswith("]", pos) else None
            end = after[0] if after else None
        elif kind == "image":
            label = bracket_end(raw, pos + 1) if raw.startswith("![", pos) else None
            after = destination_end(raw, label) if label else None
            end = after[0] if after else None
        if end is None:
            return None
        out.append((token, start, end))
        pos = end
    return out if pos == len(raw.rstrip()) or pos == len(raw) else None
