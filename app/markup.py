"""Translate HTML (and, through app/markdown_doc.py, Markdown) without breaking its markup.

A block (p, li, td, h1..., or the text at the top of a fragment) and its inline descendants (b, a, span...) are
one unit: its text, tags removed, entities decoded and whitespace runs made one space, is translated as one
text, and each inline element is put back around the target words that its source words aligned to, through
the model's own attention (as Bergamot projects tags).

Projection rule. Bahdanau attention is often one word off (a determiner looks at the noun after it: "Das" at
"little" in "The little girl" -> "Das kleine Mädchen"; the first target word often looks at the last source
word), so each target word's argmax would pull a neighbour into a tag. Instead, every target word gets one
source word from a Viterbi path over the whole attention matrix (an HMM aligner's distortion model):
emissions are the log of the row-normalised weights; moving one source word forward is free, staying or
skipping one costs NEAR_JUMP, any other jump FAR_JUMP. A confident link (0.9 against 0.02) outweighs the jumps,
so real reordering is kept; a weak or shifted one is pulled back onto the diagonal. Then:
- an element wraps the best contiguous run of target words linked to its source words (+1 per linked word,
  -1 per other), inside its parent element's words; siblings that claim the same words are settled by how many
  linked words they have; punctuation at the edges of its target words stays outside it when its source text
  had none there (`<a>park</a>.` -> `<a>Park</a>.`); inside one word that came out unchanged (H<sub>2</sub>O)
  it keeps its offsets;
- a void (<br>, <img>, a comment, an element without text, untranslated inline code) goes right after the
  target of the source word before it if it was glued to that word, else right before the target of the word
  after it; one between a space and closing punctuation ("see <code>x</code>.") is not shown to the model as
  "see ." but as "see." and goes before the target word's final punctuation; a <br> counts as a space;
- fallbacks never drop a tag: an element none of whose words came out wraps the target word that attended to
  it most, else the word at its relative position (an attention-free model), else (no words at all) it is
  written empty.

Parsing. The tokenizer is the standard library's html.parser (the one under BeautifulSoup's "html.parser",
kept with CPython), because it reports where each token starts in the input: everything outside a translated
unit is copied byte for byte (entities as written, attribute quoting, whitespace, comments, doctype, even
malformed bits), which a tree library that re-serialises (lxml, BeautifulSoup, selectolax) cannot promise:
they decode &copy; and &nbsp;, normalise quotes, and libxml2 wraps a bare text fragment in <p>. The tree is
built here with HTML's implied-end rules (a block start closes an open <p>; <li>, <dt>/<dd>, <tr>, <td>/<th>,
<option> close their open sibling; an end tag closes the elements opened inside it; an inline end tag does not
cross a block; <x/> is an empty element). Inside a unit, an element whose end tag was implied gets one
written and a stray end tag is dropped, so the translated text is well nested; outside units nothing changes.
Characters the input wrote as entities inside a unit (&copy; &#8212;) are written back the same way.

A top-level <br> ends a unit (lines of an address or a poem stay lines); a <br> inside an inline element is a
void. script, style, code, pre, kbd, samp, var, textarea, svg, math, iframe, object, canvas and elements with
translate="no" or class "notranslate" keep their content untranslated (translate="no" and notranslate also
their attributes). alt, title and placeholder attributes and <meta name="description" content> are translated
as texts of their own. A unit without letters (numbers, punctuation) is not sent to the model.
"""

from __future__ import annotations

import html as htmllib
import math
import re
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from app.alignment import Alignment, words
from model.errors import InputError

TranslateAligned = Callable[[list[str]], Awaitable[list[Alignment]]]


class MarkupError(InputError):
    """Malformed markup that cannot be repaired; the API answers 400 with its message."""

    code = "bad_markup"


# ---------------------------------------------------------------------------------------------------------
# Projection: put markup back into a translation through its alignment (shared with app/markdown_doc.py).

NEAR_JUMP = 0.8  # cost of staying on a source word or skipping one (the shift-by-one pattern)
FAR_JUMP = 1.5  # cost of any other jump (reordering)
FLOOR = 1e-3  # probability floor of a link, so that log() stays finite


@dataclass
class Piece:
    """Markup to put back: an element around the unit text's characters [start, end) written as `open` +
    content + `close`, or, when `void`, `open` written at source position `start`. `glued`: a void written
    right after a word, with no space before it; `spaced`: a void with spaces (or the unit's ends) on both
    sides, like a word (`Run <code>ls</code> now`), written with a space between it and its target word.
    `breaks`: a void that separates words (<br>): it takes the place of the space it is put at.
    `keep_empty`: an element that got no words is still written (an HTML tag); if not, only its children are
    (Markdown's `**`, which would be read as text)."""

    open: str
    close: str = ""
    start: int = 0
    end: int = 0
    void: bool = False
    glued: bool = False
    spaced: bool = False
    breaks: bool = False
    keep_empty: bool = True
    children: list[Piece] = field(default_factory=list)


def monotone_links(alignment: Alignment) -> list[int]:
    """Each target word's source word: the best path through the attention with a distortion prior (see the
    module docstring), found sentence by sentence (the attention of a text is block diagonal). A row with no
    weight (an attention-free model) points at the word at its relative position; -1 for every word when the
    source has no words."""
    n, m = len(alignment.target_words), len(alignment.source_words)
    if not m or not n:
        return [-1] * n
    rows: list[list[float] | None] = []
    for j in range(n):
        row = [w if w > 0 else 0.0 for w in alignment.weights[j][:m]] if j < len(alignment.weights) else []
        total = sum(row)
        rows.append([w / total for w in row] + [0.0] * (m - len(row)) if total > 0 else None)
    links: list[int] = []
    for j0, j1, i0, i1 in _blocks(rows, m):
        emissions = []
        for j in range(j0, j1):
            row = rows[j]
            if row is None:  # no attention: the word at the same relative position
                row = [0.0] * (i1 - i0)
                row[min(i1 - i0 - 1, (2 * (j - j0) + 1) * (i1 - i0) // (2 * (j1 - j0)))] = 1.0
            else:
                row = row[i0:i1]
            emissions.append([math.log(p + FLOOR) for p in row])
        links += [i0 + i for i in _viterbi(emissions, i1 - i0)]
    return links


def _blocks(rows: list[list[float] | None], m: int) -> list[tuple[int, int, int, int]]:
    """Independent blocks (target rows [j0, j1), source words [i0, i1)): cuts where no row before attends to a
    source word after, and no row after to one before."""
    spans = [(next(i for i, w in enumerate(r) if w > 0), m - next(i for i, w in enumerate(reversed(r)) if w > 0) - 1)
             if r else None for r in rows]
    suffix_min = [m] * (len(rows) + 1)
    for j in range(len(rows) - 1, -1, -1):
        suffix_min[j] = min(suffix_min[j + 1], spans[j][0] if spans[j] else m)
    blocks, j0, i0, reach = [], 0, 0, -1
    for j in range(1, len(rows) + 1):
        reach = max(reach, spans[j - 1][1] if spans[j - 1] else -1)
        if j == len(rows) or (reach >= 0 and reach < suffix_min[j] < m):
            i1 = m if j == len(rows) else reach + 1
            if i1 > i0:
                blocks.append((j0, j, i0, i1))
                j0, i0 = j, i1
    if j0 < len(rows):  # rows left without a block of their own: they join the last one
        last = blocks.pop() if blocks else (j0, j0, i0, m)
        blocks.append((last[0], len(rows), last[2], m))
    return blocks


def _viterbi(emissions: list[list[float]], m: int) -> list[int]:
    """The best source word for each row: emission log-probabilities plus the jump costs."""
    scores = [emissions[0][i] - (0.0 if i == 0 else NEAR_JUMP if i == 1 else FAR_JUMP) for i in range(m)]
    back: list[list[int]] = []
    for row in emissions[1:]:
        best = max(range(m), key=scores.__getitem__)
        far = scores[best] - FAR_JUMP
        new, pointers = [], []
        for i in range(m):
            score, came = far, best
            if i >= 1 and scores[i - 1] > score:  # one word forward: free
                score, came = scores[i - 1], i - 1
            if scores[i] - NEAR_JUMP > score:  # the same word again
                score, came = scores[i] - NEAR_JUMP, i
            if i >= 2 and scores[i - 2] - NEAR_JUMP > score:  # one word skipped
                score, came = scores[i - 2] - NEAR_JUMP, i - 2
            new.append(score + row[i])
            pointers.append(came)
        scores = new
        back.append(pointers)
    path = [max(range(m), key=scores.__getitem__)]
    for pointers in reversed(back):
        path.append(pointers[path[-1]])
    return path[::-1]


class Projector:
    """Places the pieces of one unit into its translation and writes the result."""

    def __init__(self, alignment: Alignment, escape: Callable[[str], str]) -> None:
        self.a, self.escape = alignment, escape
        self.links = monotone_links(alignment)
        self.rows = [[w / s for w in row] if (s := sum(row)) > 0 else row for row in alignment.weights]
        self.placed: dict[int, tuple[int, int]] = {}  # id(piece) -> target characters [start, end)

    def render(self, pieces: list[Piece]) -> str:
        n = len(self.a.target_words)
        self._place(pieces, 0, n, 0, len(self.a.target))
        return self._write(pieces, 0, len(self.a.target))

    # -- where each piece goes ------------------------------------------------------------------------------
    def _source_words(self, piece: Piece) -> tuple[int, int]:
        inside = [i for i, (x, y) in enumerate(self.a.source_words) if x < piece.end and y > piece.start]
        return (inside[0], inside[-1] + 1) if inside else (0, 0)

    def _wanted(self, piece: Piece, lo: int, hi: int) -> tuple[int, int, int]:
        """The target words [s, e) an element wants inside [lo, hi), and how many of them link into it."""
        u, v = self._source_words(piece)
        if lo >= hi or u >= v:
            return lo, lo, 0
        best, best_span, run, run_start = 0.0, (lo, lo), 0.0, lo
        for j in range(lo, hi):
            if run < 0:
                run, run_start = 0.0, j
            run += 1 if u <= self.links[j] < v else -1
            if run > best or (run == best and run > 0 and run_start == best_span[0]):
                best, best_span = run, (run_start, j + 1)
        if best > 0:
            members = sum(u <= self.links[j] < v for j in range(*best_span))
            return best_span[0], best_span[1], members
        attention = [sum(self.rows[j][u:v]) if j < len(self.rows) else 0.0 for j in range(lo, hi)]
        if max(attention) > 0:
            j = lo + attention.index(max(attention))
        else:  # no attention at all: the word at the element's relative position
            m, n = max(1, len(self.a.source_words)), len(self.a.target_words)
            j = min(hi - 1, max(lo, int((u + v) / 2 / m * n)))
        return j, j + 1, 0

    def _place(self, pieces: list[Piece], lo: int, hi: int, start: int, end: int) -> None:
        """Give each piece its target characters inside its parent's words [lo, hi) / characters [start, end)."""
        wanted = {id(p): self._wanted(p, lo, hi) for p in pieces if not p.void}
        taken: set[int] = set()
        spans: dict[int, tuple[int, int]] = {}
        for p in sorted((p for p in pieces if not p.void), key=lambda p: -wanted[id(p)][2]):
            s, e, _ = wanted[id(p)]
            runs, current = [], []
            for j in range(s, e):
                if j in taken:
                    current = []
                    continue
                if not current:
                    runs.append(current)
                current.append(j)
            if runs:
                chosen = max(runs, key=len)
                spans[id(p)] = (chosen[0], chosen[-1] + 1)
                taken.update(chosen)
        words_of = self.a.target_words
        for p in pieces:
            if id(p) in spans:
                s, e = spans[id(p)]
                x, y = self._element_in_word(p, s, e) or self._trim(p, words_of[s][0], words_of[e - 1][1])
                self.placed[id(p)] = (min(max(x, start), end), max(min(y, end), start))
        for p in pieces:
            if id(p) not in spans:
                at = self._anchor(p, lo, hi, start, end)
                for q in pieces:
                    if id(q) in spans and self.placed[id(q)][0] < at < self.placed[id(q)][1]:
                        x, y = self.placed[id(q)]
                        at = x if at - x < y - at else y
                self.placed[id(p)] = (at, at)
        for p in pieces:
            if not p.void:
                s, e = spans.get(id(p), (lo, lo))
                x, y = self.placed[id(p)]
                self._place(p.children, s, e, x, y)

    def _element_in_word(self, piece: Piece, s: int, e: int) -> tuple[int, int] | None:
        """An element inside one word whose translation is that word again (H<sub>2</sub>O, x<sup>2</sup>,
        a name) keeps its place in the word."""
        u, v = self._source_words(piece)
        if v - u != 1 or e - s != 1:
            return None
        (sx, sy), (tx, ty) = self.a.source_words[u], self.a.target_words[s]
        if not (sx < piece.start or piece.end < sy) or self.a.source[sx:sy].lower() != self.a.target[tx:ty].lower():
            return None
        return tx + max(piece.start - sx, 0), tx + min(piece.end, sy) - sx

    def _trim(self, piece: Piece, x: int, y: int) -> tuple[int, int]:
        """Leave outside the element the punctuation around its target words when its source text has none
        there: `<a>park</a>.` -> `<a>Park</a>.`, `<b>dog</b>` -> `„<b>Hund</b>`."""
        text, target = self.a.source[piece.start:piece.end].strip(), self.a.target
        if text[:1].isalnum():
            while x < y - 1 and not target[x].isalnum():
                x += 1
        if text[-1:].isalnum():
            while y > x + 1 and not target[y - 1].isalnum():
                y -= 1
        return x, y

    def _anchor(self, piece: Piece, lo: int, hi: int, start: int, end: int) -> int:
        """Where a void (or an element none of whose words came out) goes, in target characters."""
        source_words = self.a.source_words
        inside = next((i for i, (x, y) in enumerate(source_words) if x < piece.start < y), None)
        if piece.void and inside is not None:
            at = self._void_in_word(piece.start, inside, lo, hi)
            if at is not None:
                return min(max(at, start), end)
        before = [i for i, (_, y) in enumerate(source_words) if y <= piece.start]
        after = [i for i, (x, _) in enumerate(source_words) if x >= (piece.end if not piece.void else piece.start)]
        targets = self.a.target_words

        def after_word(i: int) -> int | None:
            for k in range(i, -1, -1):
                found = [j for j in range(lo, hi) if self.links[j] == k]
                if found:
                    return targets[max(found)][1]
            return None

        def before_word(i: int) -> int | None:
            for k in range(i, len(source_words)):
                found = [j for j in range(lo, hi) if self.links[j] == k]
                if found:
                    return targets[min(found)][0]
            return None

        at = None
        if before and (piece.glued or not after):
            at = after_word(before[-1])
        if at is None and after:
            at = before_word(after[0])
        if at is None and before:
            at = after_word(before[-1])
        if at is None:
            at = end if before else start
        return min(max(at, start), end)

    def _void_in_word(self, position: int, word: int, lo: int, hi: int) -> int | None:
        """Where a void inside source word `word` goes: at the same offset if that word came out unchanged (a
        name split by <wbr>); else after the target of that word (or of the nearest one before it that has
        one), but before its trailing punctuation if only punctuation followed the void in the source ("see
        <code>x</code>." -> "siehe <code>x</code>.")."""
        for k in range(word, -1, -1):
            found = [j for j in range(lo, hi) if self.links[j] == k]
            if found:
                break
        else:
            return None
        (sx, sy), (tx, ty) = self.a.source_words[word], self.a.target_words[found[-1]]
        if k == word and self.a.source[sx:sy].lower() == self.a.target[tx:ty].lower():
            return tx + position - sx
        at = ty
        if not any(c.isalnum() for c in self.a.source[position:sy]):
            while at > tx + 1 and not self.a.target[at - 1].isalnum():
                at -= 1
        return at

    # -- writing ---------------------------------------------------------------------------------------------
    def _write(self, pieces: list[Piece], start: int, end: int) -> str:
        order = {id(p): k for k, p in enumerate(pieces)}
        ranked = sorted(pieces, key=lambda p: (self.placed[id(p)][0], self.placed[id(p)][1] > self.placed[id(p)][0],
                                               order[id(p)]))
        out, cursor = [], start
        for p in ranked:
            x, y = self.placed[id(p)]
            out.append(self.escape(self.a.target[cursor:x]))
            cursor = max(cursor, y)
            if p.void:
                out.append(self._spaced(p, x))
                if p.breaks and self.a.target[x:x + 1].isspace() and x + 1 <= end:
                    cursor = max(cursor, x + 1)  # the <br> is the space
            elif x == y and not p.keep_empty:
                out.append(self._write(p.children, x, y))
            else:
                out.append(p.open + self._write(p.children, x, y) + p.close)
        out.append(self.escape(self.a.target[cursor:end]))
        return "".join(out)

    def _spaced(self, void: Piece, at: int) -> str:
        """A void as written, with a space towards the word it was put against if it stood between spaces."""
        target = self.a.target
        inside = 0 < at < len(target) and not target[at - 1].isspace() and not target[at].isspace()
        if not void.glued and inside:  # put into a word, but written after a space: "einem `field`."
            return " " + void.open
        if not void.spaced:
            return void.open
        if at < len(target) and not target[at].isspace() and (at == 0 or target[at - 1].isspace()):
            return void.open + " "
        if at > 0 and not target[at - 1].isspace() and (at == len(target) or target[at].isspace()):
            return " " + void.open
        return void.open


def project(alignment: Alignment, pieces: list[Piece], escape: Callable[[str], str]) -> str:
    """The translation of `alignment.source` with `pieces` (positions in the source) put back, text escaped."""
    return Projector(alignment, escape).render(pieces)


# ---------------------------------------------------------------------------------------------------------
# HTML: tokens with their place in the input, a tree with HTML's implied ends, units, and their translation.

VOID = frozenset("area base br col embed hr img input keygen link meta param source track wbr".split())
BLOCK = frozenset("""address article aside blockquote body button caption center col colgroup datalist dd details
    dialog dir div dl dt fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html
    label legend li listing main menu nav noscript ol optgroup option p plaintext pre section select summary table
    tbody td template textarea tfoot th thead title tr ul xmp""".split())
SKIP = frozenset("""script style code pre kbd samp var textarea svg math iframe object canvas noembed noframes xmp
    plaintext listing""".split())
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
TRANSLATED_ATTRIBUTES = ("alt", "title", "placeholder")
MAX_DEPTH = 256
_ATTRIBUTE = re.compile(r"""([^\s/>"'=][^\s/>=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
CLOSING = frozenset(".,;:!?)]}»”’…%")  # punctuation that ends the word before it
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")


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


def opted_out(node: Node) -> bool:
    """translate="no" or class="notranslate": neither the content nor the attributes are translated."""
    return (node.attr("translate") or "").strip().lower() == "no" or "notranslate" in (node.attr("class") or "").split()


def skipped(node: Node) -> bool:
    """Content never translated (the attributes of a <code>, <textarea>... still are, unless opted out)."""
    return node.tag in SKIP or opted_out(node)


class _UnitText:
    """The text of a unit as it is sent to the model: entities decoded, whitespace runs made one space."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.pending = False  # whitespace seen since the last character
        self.entities: dict[str, str] = {}  # a character the input wrote as an entity -> that entity
        self.waiting: list[Piece] = []  # voids with no character after them yet
        self.space_after_void = False  # whitespace seen since the last void

    def add(self, raw: str, decode: bool = True) -> None:
        """Add text as written in HTML (entities decoded, and remembered) or, with decode=False, as it is."""
        for match in _ENTITY.finditer(raw) if decode else ():
            char = htmllib.unescape(match.group())
            if len(char) == 1 and match.group().endswith(";") and not char.isalnum() and not char.isspace():
                self.entities[char] = match.group()
        for char in htmllib.unescape(raw) if decode else raw:
            if char.isspace():
                self.pending = self.space_after_void = True
                continue
            # a void between a space and closing punctuation ("see `x`.") leaves "see." to the model, not "see ."
            tight = self.waiting and self.pending and not self.space_after_void and char in CLOSING and self.chars
            for void in self.waiting:
                void.spaced = void.spaced and self.space_after_void
                if tight:
                    void.start = void.end = len(self.chars)
            self.pending = self.pending and not tight
            self.waiting.clear()
            if self.pending and self.chars:
                self.chars.append(" ")
            self.chars.append(char)
            self.pending = False

    def void(self, markup: str, breaks: bool = False) -> Piece:
        """A void at the current position; one that `breaks` (<br>) also ends the word before it."""
        at, before = self.position, not self.chars or self.pending
        piece = Piece(markup, start=at, end=at, void=True, glued=not before, spaced=before and not breaks,
                      breaks=breaks)
        self.pending = self.pending or breaks
        self.waiting.append(piece)
        self.space_after_void = False
        return piece

    @property
    def position(self) -> int:
        """Where the next character will go."""
        return len(self.chars) + (1 if self.pending and self.chars else 0)

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def escape(self, text: str) -> str:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for char, entity in self.entities.items():
            if char not in "&<>":
                text = text.replace(char, entity)
        return text


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
        text = _UnitText()
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

    def _pieces(self, nodes: list[Node], text: _UnitText) -> list[Piece]:
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
        text = _UnitText()
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


async def translate_markdown(text: str, translate: TranslateAligned) -> str:
    """Markdown with its text translated and its markup kept (see app/markdown_doc.py)."""
    from app.markdown_doc import translate_markdown as translate_md

    return await translate_md(text, translate)
