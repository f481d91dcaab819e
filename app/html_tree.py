"""HTML parsed into a tree whose every node knows where it is in the input, so that everything outside a translated
unit can be copied byte for byte (used by app/html_doc.py).

The tokenizer is the standard library's html.parser (the one under BeautifulSoup's "html.parser", kept with
CPython), because it reports where each token starts in the input: entities as written, attribute quoting,
whitespace, comments, doctype, even malformed bits stay as they were, which a tree library that re-serialises
(lxml, BeautifulSoup, selectolax) cannot promise: they decode &copy; and &nbsp;, normalise quotes, and libxml2
wraps a bare text fragment in <p>. The tree is built here with HTML's implied-end rules (a block start closes an
open <p>; <li>, <dt>/<dd>, <tr>, <td>/<th>, <option> close their open sibling; an end tag closes the elements
opened inside it; an inline end tag does not cross a block; <x/> is an empty element); an end tag that closes
nothing is kept as a "stray" node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from app.markup import MarkupError

VOID = frozenset("area base br col embed hr img input keygen link meta param source track wbr".split())
BLOCK = frozenset("""address article aside blockquote body button caption center col colgroup datalist dd details
    dialog dir div dl dt fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html
    label legend li listing main menu nav noscript ol optgroup option p plaintext pre section select summary table
    tbody td template textarea tfoot th thead title tr ul xmp""".split())
CLOSES_P = frozenset("""address article aside blockquote center dd details dialog dir div dl dt fieldset figcaption
    figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li listing main menu nav ol p plaintext pre section summary
    table ul xmp""".split())
SCOPE = frozenset("applet button caption html marquee object table td template th".split())
HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
IMPLIED_BY: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # start tag: (open tags it closes, where it stops)
    "li": (frozenset({"li"}), frozenset({"ul", "ol", "menu"}) | SCOPE),
    "dt": (frozenset({"dt", "dd"}), frozenset({"dl"}) | SCOPE),
    "dd": (frozenset({"dt", "dd"}), frozenset({"dl"}) | SCOPE),
    "tr": (frozenset({"tr"}), frozenset({"table", "thead", "tbody", "tfoot"})),
    "td": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "th": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "thead": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table"})),
    "tbody": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table"})),
    "tfoot": (frozenset({"thead", "tbody", "tfoot"}), frozenset({"table"})),
    "option": (frozenset({"option"}), frozenset({"select", "datalist", "optgroup"})),
    "optgroup": (frozenset({"option", "optgroup"}), frozenset({"select"})),
    "a": (frozenset({"a"}), SCOPE),
}
MAX_DEPTH = 256


@dataclass
class Token:
    kind: str  # "start", "end", "text" or "other" (comment, doctype, processing instruction, CDATA...)
    start: int
    end: int
    tag: str = ""
    attrs: list[tuple[str, str | None]] = field(default_factory=list)
    empty: bool = False  # written <x/>


class _Tokenizer(HTMLParser):
    """html.parser's tokens, each with the offsets of its text in the input."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        self.html = html
        self.tokens: list[Token] = []
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", html)]

    def _add(self, kind: str, length: int | None = None, **fields: Any) -> None:
        line, column = self.getpos()
        start = self.line_starts[line - 1] + column
        self.tokens.append(Token(kind, start, -1 if length is None else start + length, **fields))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add("start", len(self.get_starttag_text() or ""), tag=tag, attrs=attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add("start", len(self.get_starttag_text() or ""), tag=tag, attrs=attrs, empty=True)

    def handle_endtag(self, tag: str) -> None:
        self._add("end", tag=tag)

    def handle_data(self, data: str) -> None:
        self._add("text", len(data))

    def handle_entityref(self, name: str) -> None:
        self._add("text")

    def handle_charref(self, name: str) -> None:
        self._add("text")

    def handle_comment(self, data: str) -> None:
        self._add("other")

    def handle_decl(self, decl: str) -> None:
        self._add("other")

    def handle_pi(self, data: str) -> None:
        self._add("other")

    def unknown_decl(self, data: str) -> None:
        self._add("other")


def tokenize(html: str) -> list[Token]:
    """The tokens of `html`, covering it without gaps (what the parser skipped becomes an "other" token)."""
    parser = _Tokenizer(html)
    try:
        parser.feed(html)
        complete = len(parser.tokens)
        parser.close()
    except Exception as exc:  # html.parser raises on a few malformed declarations (<![foo ...)
        raise MarkupError(f"cannot parse the HTML: {exc}") from exc
    # What only close() gives is an unterminated construct at the end (<!-- ..., <a href="..., <!DOCTYPE):
    # html.parser makes text of it, a browser a comment or nothing. Kept as written, never translated.
    found = parser.tokens[:complete]
    if len(parser.tokens) > complete:
        found.append(Token("other", parser.tokens[complete].start, len(html)))
    tokens: list[Token] = []
    for k, token in enumerate(found):
        limit = found[k + 1].start if k + 1 < len(found) else len(html)
        if tokens and token.start < tokens[-1].end:
            raise MarkupError("cannot parse the HTML: overlapping tokens")
        if tokens and token.start > tokens[-1].end:
            tokens.append(Token("other", tokens[-1].end, token.start))
        elif not tokens and token.start > 0:
            tokens.append(Token("other", 0, token.start))
        token.end = limit if token.end < 0 or token.end > limit else token.end
        tokens.append(token)
    end = tokens[-1].end if tokens else 0
    if end < len(html):
        tokens.append(Token("other", end, len(html)))
    return tokens


@dataclass(eq=False)
class Node:
    """An element ("tag" set), a run of text ("text"), or something else kept as written ("other", "stray")."""

    kind: str  # "element", "text", "other" or "stray" (an end tag that closes nothing)
    start: int
    end: int  # of the start tag, text or token; an element's whole extent is `extent`
    tag: str = ""
    token: Token | None = None
    close: Token | None = None  # the element's end tag, when written
    children: list[Node] = field(default_factory=list)

    @property
    def extent(self) -> int:
        """Where the element (with its end tag, if written) ends in the input."""
        if self.close is not None:
            return self.close.end
        return self.children[-1].extent if self.children else self.end

    def attr(self, name: str) -> str | None:
        return next((v for k, v in self.token.attrs if k == name), None) if self.token else None


def build_tree(tokens: list[Token]) -> Node:
    """The element tree, with HTML's implied ends (see the module docstring)."""
    root = Node("element", 0, 0, tag="#root")
    stack = [root]

    def pop_to(names: frozenset[str], stop: frozenset[str]) -> None:
        for k in range(len(stack) - 1, 0, -1):
            if stack[k].tag in names:
                del stack[k:]
                return
            if stack[k].tag in stop:
                return

    for token in tokens:
        parent = stack[-1]
        if token.kind == "start":
            if token.tag in CLOSES_P:
                pop_to(frozenset({"p"}), SCOPE)
            if token.tag in IMPLIED_BY:
                pop_to(*IMPLIED_BY[token.tag])
            if token.tag in HEADINGS and stack[-1].tag in HEADINGS:
                stack.pop()
            node = Node("element", token.start, token.end, tag=token.tag, token=token)
            stack[-1].children.append(node)
            if token.tag not in VOID and not token.empty:
                stack.append(node)
                if len(stack) > MAX_DEPTH:
                    raise MarkupError(f"the HTML is nested more than {MAX_DEPTH} elements deep")
        elif token.kind == "end":
            for k in range(len(stack) - 1, 0, -1):
                if stack[k].tag == token.tag:
                    stack[k].close = token
                    del stack[k:]
                    break
                if token.tag not in BLOCK and stack[k].tag in BLOCK:  # an inline end tag does not cross a block
                    k = 0
                    break
            else:
                k = 0
            if k == 0:
                parent.children.append(Node("stray", token.start, token.end, token=token))
        elif token.kind == "text" and parent.children and parent.children[-1].kind == "text" \
                and parent.children[-1].end == token.start:
            parent.children[-1].end = token.end
        else:
            parent.children.append(Node(token.kind, token.start, token.end, token=token))
    return root
