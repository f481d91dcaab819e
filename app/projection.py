"""Put markup back into a translation through its word alignment (shared by app/html_doc.py and
app/markdown_doc.py): markup is a tree of `Piece`s at character positions of the source text; `project` writes the
translation with each piece around, or at, the target words it belongs to.

Every target word first gets one source word (app/monotone.py). Then:
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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.alignment import Alignment
from app.monotone import monotone_links


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
