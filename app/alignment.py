"""Word alignment from the model's own attention: which source word each target word looked at most.

SentencePiece marks the first piece of every whitespace-separated word with "▁", so the pieces of a sentence
group into its words (`\\S+` runs of the text) by counting those marks. A word-level attention matrix sums the
piece-level weights of the chosen hypothesis (its EOS row and column dropped); each target word links to the
source word with the largest sum. Texts of several sentences concatenate their sentences' alignments; a
pivoted translation (X -> en -> Y) composes its two legs' alignments through the English words.

Markup, placeholders, glossaries and documents use this to put things back where the translation put the words
they belong to (as Bergamot projects tags through its alignments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD = re.compile(r"\S+")
Span = tuple[int, int]


@dataclass(frozen=True)
class Alignment:
    """A source and a target text, their words as character spans, and the links between words.

    `weights[j][i]` is how much target word j looked at source word i (each row sums to at most 1); `links[j]`
    is the source word target word j looked at most, or None when it has no weight (e.g. an empty source).
    """

    source: str
    target: str
    source_words: list[Span]
    target_words: list[Span]
    weights: list[list[float]]

    @property
    def links(self) -> list[int | None]:
        return [max(range(len(row)), key=row.__getitem__) if row and max(row) > 0 else None for row in self.weights]

    def source_to_target(self) -> list[list[int]]:
        """For each source word, the target words linked to it (in order)."""
        out: list[list[int]] = [[] for _ in self.source_words]
        for j, i in enumerate(self.links):
            if i is not None:
                out[i].append(j)
        return out


def words(text: str) -> list[Span]:
    return [m.span() for m in WORD.finditer(text)]


def piece_words(pieces: list[str], n_words: int) -> list[int]:
    """The word index of each piece: a new word at every piece that starts with '▁'. If the marks do not match
    the text's words (a normalization that split or joined words), pieces are spread over words evenly."""
    index, out = -1, []
    for piece in pieces:
        if piece.startswith("▁") or index < 0:
            index += 1
        out.append(index)
    if index + 1 == n_words or not pieces:
        return out
    return [min(n_words - 1, k * n_words // len(pieces)) for k in range(len(pieces))] if n_words else []


def align_sentence(source: str, src_pieces: list[str], target: str, tgt_pieces: list[str],
                   attention: list[list[float]]) -> Alignment:
    """Word alignment of one sentence from piece attention ((len(tgt) + 1) x (len(src) + 1), EOS last)."""
    src_words, tgt_words = words(source), words(target)
    src_of, tgt_of = piece_words(src_pieces, len(src_words)), piece_words(tgt_pieces, len(tgt_words))
    weights = [[0.0] * len(src_words) for _ in tgt_words]
    for t, row in enumerate(attention[: len(tgt_pieces)]):
        if t >= len(tgt_of):
            break
        for s, weight in enumerate(row[: len(src_pieces)]):
            if s < len(src_of):
                weights[tgt_of[t]][src_of[s]] += weight
    pieces_per_word = [tgt_of.count(j) or 1 for j in range(len(tgt_words))]
    weights = [[w / n for w in row] for row, n in zip(weights, pieces_per_word)]
    return Alignment(source, target, src_words, tgt_words, weights)


def concatenate(parts: list[Alignment], source_gaps: list[str], target_gaps: list[str]) -> Alignment:
    """The alignment of gaps[0] + part[0] + gaps[1] + ... + part[-1] + gaps[-1] on both sides (a text rebuilt
    from its sentences): spans shift by what comes before, weights form a block diagonal."""
    source, target = source_gaps[0], target_gaps[0]
    src_words: list[Span] = []
    tgt_words: list[Span] = []
    rows: list[list[float]] = []
    total_src = sum(len(p.source_words) for p in parts)
    for part, src_gap, tgt_gap in zip(parts, source_gaps[1:], target_gaps[1:]):
        before = len(src_words)
        src_words += [(a + len(source), b + len(source)) for a, b in part.source_words]
        tgt_words += [(a + len(target), b + len(target)) for a, b in part.target_words]
        for row in part.weights:
            rows.append([0.0] * before + row + [0.0] * (total_src - before - len(row)))
        source += part.source + src_gap
        target += part.target + tgt_gap
    return Alignment(source, target, src_words, tgt_words, rows)


def compose(first: Alignment, second: Alignment) -> Alignment:
    """X -> Y from X -> P and P -> Y, where second.source == first.target (the pivot text)."""
    weights = [[sum(second.weights[j][k] * first.weights[k][i] for k in range(len(first.target_words)))
                for i in range(len(first.source_words))] for j in range(len(second.target_words))]
    return Alignment(first.source, second.target, first.source_words, second.target_words, weights)


def replace_terms(alignment: Alignment, terms: list[tuple[int, int, str]]) -> Alignment:
    """Put `replacement` where the source span [start, end) went: the target words linked to the span's words
    (from the first to the last, punctuation around them kept) become the replacement, whose words look at the
    span's words; a span no target word looked at goes after the translation of the nearest source word before
    it (or first). Markup uses this for glossary terms and protected spans, then projects its tags onto the
    final words."""
    for start, end, replacement in sorted(terms, key=lambda t: -t[0]):  # right to left: earlier spans stay put
        covered = [i for i, (a, b) in enumerate(alignment.source_words) if a < end and b > start]
        row = [1.0 / len(covered) if i in covered else 0.0 for i in range(len(alignment.source_words))]
        linked = [j for j, i in enumerate(alignment.links) if i in covered]
        target, spans, weights = alignment.target, alignment.target_words, alignment.weights
        if linked:
            first, last = min(linked), max(linked)
            a, b = spans[first][0], spans[last][1]
            core = re.match(r"^(\W*)(.*?)(\W*)$", target[a:b], re.DOTALL)
            a, b = a + len(core.group(1)), b - len(core.group(3))  # "Fahrrad." -> "Velo."
            index, removed = first, last - first + 1
        else:
            before = [j for j, i in enumerate(alignment.links) if i is not None and covered and i < covered[0]]
            index, removed = (max(before) + 1 if before else 0), 0
            a = b = spans[index - 1][1] if index else 0
            replacement = (" " + replacement) if index else (replacement + " " if target else replacement)
        target = target[:a] + replacement + target[b:]
        added = len(words(target)) - len(spans) + removed
        weights = weights[:index] + [row] * added + weights[index + removed:]
        alignment = Alignment(alignment.source, target, alignment.source_words, words(target), weights)
    return alignment
