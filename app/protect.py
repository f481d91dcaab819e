"""Spans that must come through a translation byte-identical, and glossary terms, put back through the alignment.

`protect` finds URLs, e-mail addresses, inline `code`, placeholders ({name}, {{name}}, %s, %1$s, %(name)s),
variables ($VAR, ${VAR}), numbers, do-not-translate terms and a glossary's source terms. In `Protected.source`,
what the model translates, numbers and glossary terms stay as they are (numbers: test_2016_flickr BLEU 36.21 ->
36.30, and "number 1102" no longer comes out as "Nummer 40"); every other span becomes STAND_IN, "New York", the
name the shipped caption model copies most often of ~20 tried (71%; "Frisbee" 54%, "Xaver" 0%) and that gets
articles and cases right around it; with `stand_in=None` the spans are removed instead. On captions with spans
(BLEU, 30 written / 23 held-out test ones) that beat removing the spans (61.2 / 41.2), keeping them as they are
(56.2 / 39.2), a rare name or a digit (61.4-62.1 / 40.9-42.1), and stand-in-then-removal gets 70.3 / 45.8.
`restore` puts each slot's replacement (its text, or the glossary's target term) into the translation
1. over the model's copy of the stand-in (or the target term, if the model wrote it), else
2. over the target word(s) that attended most to the stand-in or term (its translation), else
3. after its left neighbour's translation (or before its right neighbour's), else
4. at the end, listed in `unplaced` (for the API to flag).
Copies of the stand-in and of numbers that no slot took are removed, so every protected span comes out exactly
once whatever the model does. `translate_protected` translates again, with the spans removed, the texts whose
stand-ins the model did not all copy. A text with nothing to protect and no glossary term goes to the model as
it is: its translation is exactly the one it gets without this module.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.alignment import Alignment, Span
from model.errors import InputError

STAND_IN = "New York"
RENDERED = re.compile(r"(?<!\w)New[ -]?York\w*(?:[ -]City)?(?!\w)")  # how the model writes the stand-in
MIN_ATTENTION = 0.1  # a target word that no word links to: this much attention on a slot makes it its translation
PATTERNS = [(kind, re.compile(pattern)) for kind, pattern in [  # for a tie, earlier kinds win
    ("code", r"`[^`\n]+`"),
    ("url", r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+"),
    ("email", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ("placeholder", r"\{\{\s*[\w.]+\s*\}\}|\{[\w.]*\}|%(?:\d+\$|\([\w.]+\))?[-+#0]*\d*(?:\.\d+)?[sdifuxXoeEgGc]"),
    ("variable", r"\$\{\w+\}|\$[A-Za-z_]\w*"),
    ("number", r"(?<![\w.,])\d+(?:[.,:]\d+)*(?!\w)"),
]]
NUMBER = PATTERNS[-1][1]
KEPT = ("number", "glossary")  # kinds the model sees as they are
PUNCTUATION = ".,;:!?'\"()[]{}«»‘’“”„"


@dataclass(frozen=True)
class Slot:
    """A span of the text: `text` is what the source had, `replacement` what the output gets (the text itself,
    or the glossary's target term); its stand-in is Protected.source[start:end] ("" where it was removed)."""

    kind: str  # code, url, email, placeholder, variable, number, term (do not translate) or glossary
    text: str
    replacement: str
    start: int
    end: int

    @property
    def has_stand_in(self) -> bool:
        return self.end > self.start


@dataclass(frozen=True)
class Protected:
    """The text, what the model translates instead (`source`) and the slots to put back into its translation."""

    text: str
    source: str
    slots: list[Slot]


@dataclass(frozen=True)
class Restored:
    """A translation with every slot's replacement in it; the `unplaced` ones were appended at the end."""

    text: str
    unplaced: list[Slot]


TranslateAligned = Callable[[list[str]], Awaitable[list[Alignment]]]


def _whole(text: str) -> str:
    """A pattern for `text`, not inside a longer word (nor a number inside a longer number: 3 in 3.5)."""
    number = text[:1].isdigit()
    return (r"(?<!\w)" if text[:1].isalnum() else "") + (r"(?<!\d[.,:])" if number else "") + re.escape(text) + (
        r"(?!\w)" if text[-1:].isalnum() else "") + (r"(?![.,:]\d)" if number else "")


def _closes(url: str) -> bool:
    """Whether the URL ends with a bracket it opened: "https://example.com/path_(info)", ".../{id}"."""
    closing = url[-1:]
    return closing in ")]}" and url.count("([{"[")]}".index(closing)]) >= url.count(closing)


def find_spans(text: str, do_not_translate: Sequence[str] = (), glossary: Mapping[str, str] | None = None,
               numbers: bool = True) -> list[tuple[int, int, str, str]]:
    """The spans to protect as (start, end, kind, replacement), left to right, none overlapping: of two that
    overlap, the one that starts first wins, then the longer, then do-not-translate terms, then glossary terms,
    then PATTERNS' order; touching ones are one ("%s%d"). Terms match whole words; do-not-translate terms match
    case, glossary terms do not."""
    found: list[tuple[int, int, int, str, str]] = []
    for term in (t for t in do_not_translate if t.strip()):
        found += [(m.start(), m.end(), -2, "term", term) for m in re.finditer(_whole(term), text)]
    for term, target in (glossary or {}).items():
        if term.strip() and target:
            found += [(m.start(), m.end(), -1, "glossary", target)
                      for m in re.finditer(_whole(term), text, re.IGNORECASE)]
    for rank, (kind, pattern) in enumerate(PATTERNS):
        for m in pattern.finditer(text) if numbers or kind != "number" else ():
            end = m.end()
            while kind == "url" and text[end - 1] in PUNCTUATION and not _closes(text[m.start():end]):
                end -= 1  # "(see https://example.com/a)." ends at the "a"
            found.append((m.start(), end, rank, kind, text[m.start():end]))
    spans: list[tuple[int, int, str, str]] = []
    for start, end, _, kind, replacement in sorted(found, key=lambda f: (f[0], f[0] - f[1], f[2])):
        if spans and start == spans[-1][1] and "glossary" not in (kind, spans[-1][2]):  # "{dir}{name}": one
            start, _, first_kind, first_replacement = spans.pop()
            kind, replacement = kind if first_kind == "number" else first_kind, first_replacement + replacement
        if not spans or start >= spans[-1][1]:
            spans.append((start, end, kind, replacement))
    return spans


def protect(text: str, do_not_translate: Sequence[str] = (), glossary: Mapping[str, str] | None = None, *,
            numbers: bool = True, stand_in: str | None = STAND_IN) -> Protected:
    """What to translate instead of the text, and its slots; with nothing to protect, the text itself.
    Spans become `stand_in`, or are removed (with a space next to them) where it is None, where the text has
    the stand-in of its own, and where the span is part of a word ("file{n}")."""
    if stand_in and stand_in.lower() in text.lower():
        stand_in = None
    source, slots, done = "", [], 0
    for start, end, kind, replacement in find_spans(text, do_not_translate, glossary, numbers):
        before, span, after = text[done:start], text[start:end], text[end:end + 1]
        left, right = re.search(r"\S*$", text[:start]).group(), re.match(r"\S*", text[end:]).group()
        glued = any(c.isalnum() for c in left + right)  # part of a word: "file{n}.txt", "$HOME/{dir}"
        keep = span if kind in KEPT else "" if glued else stand_in or ""
        if not keep and before.endswith(" ") and not any(c.isalnum() for c in right):
            before = before.rstrip(" ")  # "at {url}." -> "at."
        elif not keep and after == " " and (not before or before[-1].isspace()):
            end += 1  # "{name} sits" -> "sits"
        source += before
        slots.append(Slot(kind, span, replacement, len(source), len(source) + len(keep)))
        source += keep
        done = end
    return Protected(text, source + text[done:], slots)


def _core(text: str, span: Span) -> Span:
    """A word without the punctuation around it (all of it, if it is all punctuation)."""
    start, end = span
    while start < end and text[start] in PUNCTUATION:
        start += 1
    while end > start and text[end - 1] in PUNCTUATION:
        end -= 1
    return (start, end) if start < end else span


def _neighbours(alignment: Alignment, slot: Slot, covered: list[int]) -> list[tuple[int, bool]]:
    """Source words next to a slot, nearest first, left and right taking turns: (word, whether it is left)."""
    left = [(i, True) for i, (a, _) in reversed(list(enumerate(alignment.source_words)))
            if a < slot.start and i not in covered]
    right = [(i, False) for i, (a, _) in enumerate(alignment.source_words) if a >= slot.end]
    if right and alignment.source_words[right[0][0]][0] == slot.end and alignment.source[slot.end - 1:slot.end] == " ":
        left, right = right, left  # glued to the word after it: "{dir}.txt"
    return [x for pair in zip(left, right) for x in pair] + left[len(right):] + right[len(left):]


def _beside(alignment: Alignment, slot: Slot, word: int, left: bool, linked: list[int]) -> tuple[int, str]:
    """Where a slot goes next to the target words `linked` to its neighbour `word`, and with what spaces."""
    (a, b), (x, y) = alignment.source_words[word], alignment.target_words[max(linked) if left else min(linked)]
    source, target = alignment.source, alignment.target
    head = source[a:slot.start] if left and slot.start < b else ""  # the part of a word the slot was inside
    if head and source[a:b] == target[x:y] and not (any(c.isalnum() for c in head) and not any(
            c.isalnum() for c in source[slot.start:b])):  # a copied word: "()" -> "({url})", "file{n}.txt"
        return x + len(head), slot.replacement
    if not left:  # glued to the word after it (the word was copied): "{dir}.txt"
        glued = a == slot.start and source[a - 1:a].isspace() and source[a:b] == target[x:y]
        return (x, slot.replacement) if glued else (_core(target, (x, y))[0], f"{slot.replacement} ")
    at = _core(target, (x, y))[1]
    return at + (head[-1:] in PUNCTUATION and target[at:at + 1] == head[-1:]), f" {slot.replacement}"


def restore(protected: Protected, alignment: Alignment) -> Restored:
    """The translation with each slot's replacement in it, exactly once (see the module's steps 1-4);
    `alignment` aligns protected.source with the translation."""
    target, slots = alignment.target, protected.slots
    if not slots:
        return Restored(target, [])
    links, weights, target_words = alignment.links, alignment.weights, alignment.target_words
    covered = [[i for i, (a, b) in enumerate(alignment.source_words) if a < slot.end and b > slot.start]
               if slot.has_stand_in else [] for slot in slots]  # the source words of each slot's stand-in
    edits: list[tuple[int, int, str, int]] = []  # (start, end, new text, slot) on the target
    placed: set[int] = set()

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b, _, _ in edits)

    column = [[sum(row[i] for i in cover) for row in weights] for cover in covered]  # attention on each slot

    def attention(k: int, span: Span) -> float:
        return sum(column[k][j] for j, (a, b) in enumerate(target_words) if a < span[1] and b > span[0])

    def place(k: int, start: int, end: int, new: str) -> None:
        edits.append((start, end, new, k))
        placed.add(k)

    for k, slot in enumerate(slots):  # 1. over a copy
        copy = re.compile(_whole(slot.replacement)) if slot.kind in KEPT else RENDERED
        copies = [m.span() for m in copy.finditer(target) if free(*m.span())] if slot.has_stand_in else []
        if copies:
            place(k, *max(copies, key=lambda span: attention(k, span)), slot.replacement)
    for k, slot in enumerate(slots):  # 2. over its translation (the neighbours linked to its other words too)
        linked = [j for j, i in enumerate(links) if i in covered[k] and free(*target_words[j])]
        translation = linked or [j for j, span in enumerate(target_words)
                                 if column[k][j] >= MIN_ATTENTION and free(*span)]
        if k in placed or not translation:
            continue
        first = last = max(translation, key=column[k].__getitem__)
        sources = {links[first]}
        while first - 1 in linked and links[first - 1] not in sources:
            first -= 1
            sources.add(links[first])
        while last + 1 in linked and links[last + 1] not in sources:
            last += 1
            sources.add(links[last])
        place(k, *_core(target, (target_words[first][0], target_words[last][1])), slot.replacement)
    for k, slot in enumerate(slots):  # 3. next to its neighbours' translations
        for word, left in _neighbours(alignment, slot, covered[k]) if k not in placed else []:
            linked = [j for j, i in enumerate(links) if i == word]
            at, new = _beside(alignment, slot, word, left, linked) if linked else (-1, "")
            if at >= 0 and free(at, at):
                place(k, at, at, new)
                break
    strays = [m.span() for m in RENDERED.finditer(target)] if any(
        s.has_stand_in and s.kind not in KEPT for s in slots) else []
    for k, slot in enumerate(slots):  # numbers: the model's other copies and what it made of one
        if slot.kind == "number":
            strays += [m.span() for m in re.finditer(_whole(slot.text), target)]
            strays += [_core(target, target_words[j]) for j, i in enumerate(links) if i in covered[k]]
    for start, end in sorted(set(strays)):  # 4. removed, with the space before (or after) them
        if (RENDERED.fullmatch(target[start:end]) or NUMBER.fullmatch(target[start:end])) and free(start, end):
            wider = (start - (target[start - 1:start] == " "), end + (target[start - 1:start] != " " and
                                                                     target[end:end + 1] == " "))
            edits.append((*(wider if free(*wider) else (start, end)), "", len(slots)))
    text, done = "", 0
    for start, end, new, _ in sorted(edits, key=lambda e: (e[0], e[1], e[3])):
        text, done = text + target[done:start] + new, max(done, end)
    text += target[done:]
    unplaced = [slot for k, slot in enumerate(slots) if k not in placed]
    for slot in unplaced:
        text = f"{text} {slot.replacement}" if text.strip() else text + slot.replacement
    return Restored(text, unplaced)


def stand_ins_copied(protected: Protected, alignment: Alignment) -> bool:
    """Whether the translation has as many copies of the stand-in as the source has stand-ins (if any)."""
    expected = sum(s.has_stand_in and s.kind not in KEPT for s in protected.slots)
    return not expected or len(RENDERED.findall(alignment.target)) == expected


async def translate_protected(texts: list[str], translate: TranslateAligned, do_not_translate: Sequence[str] = (),
                              glossary: Mapping[str, str] | None = None, *, numbers: bool = True) -> list[Restored]:
    """Translate texts with their spans protected and the glossary applied: one call of `translate` for all the
    texts, and a second, with the spans removed, for those whose stand-ins the model did not copy. A text that
    is nothing but slots around no word ("{name}", "%s: 42") does not go to the model at all."""
    protected = [protect(text, do_not_translate, glossary, numbers=numbers) for text in texts]
    removed = [protect(text, do_not_translate, glossary, numbers=numbers, stand_in=None) for text in texts]
    bare = [bool(p.slots) and not any(c.isalpha() for c in r.source) and all(s.kind != "glossary" for s in p.slots)
            for p, r in zip(protected, removed)]  # nothing to translate: the text is its own translation
    todo = [k for k in range(len(texts)) if not bare[k]]
    aligned = dict(zip(todo, await translate([protected[k].source for k in todo]) if todo else []))
    again = {k for k in todo if not stand_ins_copied(protected[k], aligned[k])}
    if again:
        aligned.update(zip(sorted(again), await translate([removed[k].source for k in sorted(again)])))
        protected = [removed[k] if k in again else p for k, p in enumerate(protected)]
    return [restore(protected[k], aligned[k]) if k in aligned else Restored(text, []) for k, text in enumerate(texts)]


def load_glossaries(folder: Path | None) -> dict[tuple[str, str], dict[str, str]]:
    """Server-side glossaries: `SRC-TGT.tsv` files (`source term<TAB>target term` a line, `#` comments) in a
    folder; a missing folder is no glossary. A malformed line is an InputError naming the file and line."""
    glossaries: dict[tuple[str, str], dict[str, str]] = {}
    if folder is None or not folder.is_dir():
        return glossaries
    for path in sorted(folder.glob("*-*.tsv")):
        source, target = path.stem.split("-", 1)
        glossaries[(source, target)] = read_glossary(path)
    return glossaries


def read_glossary(path: Path) -> dict[str, str]:
    """One glossary file: `source term<TAB>target term` a line, blank lines and `#` comments skipped."""
    entries: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read glossary {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        source, sep, target = line.partition("\t")
        if not sep or not source.strip() or not target.strip():
            raise InputError(f"{path}:{number}: expected 'source term<TAB>target term'")
        entries[source.strip()] = target.strip()
    return entries
