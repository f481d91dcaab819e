"""Translate HTML without breaking its markup (the engine behind app.markup.translate_html).

A block (p, li, td, h1..., or the text at the top of a fragment) and its inline descendants (b, a, span...) are
one unit: its text (app/unit_text.py) is translated as one text, and each inline element is put back around the
target words that its source words aligned to (app/projection.py). The input is parsed into a tree that knows
where each node is (app/html_tree.py): everything outside a unit is copied byte for byte; inside a unit, an
element whose end tag was implied gets one written and a stray end tag is dropped, so the translated text is
well nested.

A top-level <br> ends a unit (lines of an address or a poem stay lines); a <br> inside an inline element is a
void. script, style, code, pre, kbd, samp, var, textarea, svg, math, iframe, object, canvas and elements with
translate="no" or class "notranslate" keep their content untranslated (translate="no" and notranslate also
their attributes). alt, title and placeholder attributes and <meta name="description" content> are translated
as texts of their own. A unit without letters (numbers, punctuation) is not sent to the model.
"""

from __future__ import annotations

import html as htmllib
import re
from bisect import bisect_left

from app.alignment import Alignment, words
from app.html_tree import BLOCK, VOID, Node, Token, build_tree, tokenize
from app.markup import TranslateAligned
from app.projection import Piece, project
from app.unit_text import UnitText

SKIP = frozenset("""script style code pre kbd samp var textarea svg math iframe object canvas noembed noframes xmp
    plaintext listing""".split())
TRANSLATED_ATTRIBUTES = ("alt", "title", "placeholder")
_ATTRIBUTE = re.compile(r"""([^\s/>"'=][^\s/>=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")


def opted_out(node: Node) -> bool:
    """translate="no" or class="notranslate": neither the content nor the attributes are translated."""
    return (node.attr("translate") or "").strip().lower() == "no" or "notranslate" in (node.attr("class") or "").split()


def skipped(node: Node) -> bool:
    """Content never translated (the attributes of a <code>, <textarea>... still are, unless opted out)."""
    return node.tag in SKIP or opted_out(node)


class HtmlDocument:
    """One HTML text: its units (runs of text and inline elements to translate as one text, between blocks)
    and its attributes to translate; then their translations written into the input."""

    def __init__(self, html: str) -> None:
        self.html = html
        self.root = build_tree(tokenize(html))
        self.units: list[tuple[int, int, list[Node]]] = []  # input [start, end) and the nodes in it
        self.attributes: list[tuple[Token, str, str]] = []  # start tag, attribute name, its value
        self.replaced: dict[int, tuple[int, str]] = {}  # start tag offset -> (its end, the tag translated)
        self._has_block: dict[int, bool] = {}
        self._collect(self.root)

    # -- what to translate ----------------------------------------------------------------------------------
    def has_block(self, node: Node) -> bool:
        if id(node) not in self._has_block:
            self._has_block[id(node)] = any(
                c.kind == "element" and (c.tag in BLOCK or self.has_block(c)) for c in node.children)
        return self._has_block[id(node)]

    def has_text(self, node: Node, letters: bool = True) -> bool:
        """Whether the node has letters to translate (or, with letters=False, any text) outside skipped elements."""
        if node.kind == "text":
            text = htmllib.unescape(self.html[node.start:node.end])
            return any(c.isalpha() for c in text) if letters else bool(text.strip())
        return node.kind == "element" and not skipped(node) and any(self.has_text(c, letters) for c in node.children)

    def _collect(self, container: Node) -> None:
        """Units: the runs of a container's children between its blocks and top-level <br>s."""
        run: list[Node] = []
        for child in container.children:
            unterminated = child.kind == "other" and not self.html[child.start:child.end].endswith(">")
            if not unterminated and (child.kind != "element" or not (child.tag == "br" or child.tag in BLOCK
                                                                     or self.has_block(child))):
                run.append(child)
                self._collect_attributes(child)
                continue
            self._add_unit(run)
            run = []
            self._collect_attributes(child, deep=False)
            if not skipped(child):
                self._collect(child)
        self._add_unit(run)

    def _collect_attributes(self, node: Node, deep: bool = True) -> None:
        if node.kind != "element" or opted_out(node) or node.token is None:
            return
        names = list(TRANSLATED_ATTRIBUTES)
        if node.tag == "meta" and (node.attr("name") or "").strip().lower() == "description":
            names.append("content")
        for name in names:
            value = node.attr(name)
            if value and any(c.isalpha() for c in value):
                self.attributes.append((node.token, name, value))
        for child in node.children if deep and not skipped(node) else []:
            self._collect_attributes(child)

    def _add_unit(self, run: list[Node]) -> None:
        if not any(self.has_text(n) for n in run):
            return
        blank = [n.kind == "text" and not self.html[n.start:n.end].strip() for n in run]
        run = run[blank.index(False): len(run) - blank[::-1].index(False)]
        first, last = run[0], run[-1]
        head, tail = self.html[first.start:first.end], self.html[last.start:last.end]
        start = first.start + len(head) - len(head.lstrip()) if first.kind == "text" else first.start
        end = last.start + len(tail.rstrip()) if last.kind == "text" else last.extent
        self.units.append((start, end, run))

    def unit_text(self, run: list[Node]) -> str:
        text = UnitText()
        self._pieces(run, text)
        return text.text

    # -- writing the translation ------------------------------------------------------------------------------
    def translate_attribute(self, token: Token, name: str, value: str, translation: str) -> None:
        """Put the translation of one attribute's value into its start tag (as quoted as before)."""
        end, tag = self.replaced.get(token.start, (token.end, self.html[token.start:token.end]))
        name_end = re.match(r"<[^\s/>]*", tag)
        for match in _ATTRIBUTE.finditer(tag, name_end.end() if name_end else 0):
            if match.group(1).lower() != name or not match.group(2):
                continue
            written = match.group(2)
            quote = written[0] if written[0] in "\"'" else ""
            if htmllib.unescape(written[1:-1] if quote else written) != value:
                return  # not the value the parser read: leave it as it is
            quote = quote or '"'
            escaped = translation.replace("&", "&amp;").replace(quote, "&quot;" if quote == '"' else "&#39;")
            self.replaced[token.start] = (end, tag[: match.start(2)] + quote + escaped + quote + tag[match.end(2):])
            return

    def copy(self, start: int, end: int) -> str:
        """The input from start to end as written, but with translated attributes in its start tags."""
        out, cursor = [], start
        offsets = sorted(self.replaced)
        for offset in offsets[bisect_left(offsets, start):]:
            if offset >= end:
                break
            tag_end, tag = self.replaced[offset]
            out += [self.html[cursor:offset], tag]
            cursor = tag_end
        out.append(self.html[cursor:end])
        return "".join(out)

    def _pieces(self, nodes: list[Node], text: UnitText) -> list[Piece]:
        """Add the nodes' text to `text`; return their markup as pieces."""
        pieces = []
        for node in nodes:
            if node.kind == "text":
                text.add(self.html[node.start:node.end])
            elif node.kind == "stray":
                continue  # an end tag that closes nothing: not part of the repaired tree
            elif node.kind == "element" and node.tag not in VOID and self.has_text(node, letters=False):
                close = self.html[node.close.start:node.close.end] if node.close else f"</{node.tag}>"
                piece = Piece(self.copy(node.start, node.end), close, start=text.position)
                piece.children = self._pieces(node.children, text)
                piece.end = len(text.chars)
                pieces.append(piece)
            else:  # void, empty, untranslated or a comment: kept as written (its end tag written), put at its place
                implied = node.kind == "element" and node.close is None and node.tag not in VOID \
                    and not (node.token and node.token.empty)
                markup = self.copy(node.start, node.extent) + (f"</{node.tag}>" if implied else "")
                pieces.append(text.void(markup, breaks=node.tag == "br"))
        return pieces

    def render(self, run: list[Node], alignment: Alignment) -> str:
        """The translation of one unit with its markup put back."""
        text = UnitText()
        pieces = self._pieces(run, text)
        if alignment.source != text.text:  # not the text that was sent: place by position only
            alignment = Alignment(text.text, alignment.target, words(text.text), alignment.target_words, [])
        return project(alignment, pieces, text.escape)


async def translate_html(html: str, translate: TranslateAligned) -> str:
    """`html` (a fragment or a whole document) with its text translated and its markup kept."""
    document = HtmlDocument(html)
    texts = [document.unit_text(run) for _, _, run in document.units] + [v for _, _, v in document.attributes]
    aligned = await translate(texts) if texts else []
    if len(aligned) != len(texts):
        raise RuntimeError(f"{len(texts)} texts to translate, {len(aligned)} translations")
    for (token, name, value), alignment in zip(document.attributes, aligned[len(document.units):]):
        document.translate_attribute(token, name, value, alignment.target)
    out, cursor = [], 0
    for (start, end, run), alignment in zip(document.units, aligned):
        out += [document.copy(cursor, start), document.render(run, alignment)]
        cursor = end
    out.append(document.copy(cursor, len(html)))
    return "".join(out)
