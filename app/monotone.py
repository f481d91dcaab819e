"""One source word for each target word, for putting things back into a translation: a path through the
attention with a distortion prior (used by app/projection.py).

Bahdanau attention is often one word off (a determiner looks at the noun after it: "Das" at "little" in "The little
girl" -> "Das kleine Mädchen"; the first target word often looks at the last source word), so each target word's
argmax (`Alignment.links`) would pull a neighbour into a tag. Instead, every target word gets one source word from a
Viterbi path over the whole attention matrix (an HMM aligner's distortion model): emissions are the log of the
row-normalised weights; moving one source word forward is free, staying or skipping one costs NEAR_JUMP, any other
jump FAR_JUMP. A confident link (0.9 against 0.02) outweighs the jumps, so real reordering is kept; a weak or
shifted one is pulled back onto the diagonal.
"""

from __future__ import annotations

import math

from app.alignment import Alignment

NEAR_JUMP = 0.8  # cost of staying on a source word or skipping one (the shift-by-one pattern)
FAR_JUMP = 1.5  # cost of any other jump (reordering)
FLOOR = 1e-3  # probability floor of a link, so that log() stays finite


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
