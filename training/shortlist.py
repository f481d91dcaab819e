"""`rnnmt shortlist`: build a model folder's lexical shortlist (model/shortlist.py) from parallel text.

Counted in one streaming pass, in bounded memory (chunks of pairs, merged as sparse counts):
- c(t): how many pairs hold target piece t; `ranked` orders every target piece by it;
- c(s, t): how many pairs hold both source piece s and target piece t; each source piece keeps the K target
  pieces with the highest Dice coefficient 2 c(s, t) / (c(s) + c(t)) among those outside the F most frequent
  (which every vocabulary holds anyway).
Counts are weighted as the corpus specs weight them (`ding-words:0.07`). Marian builds its tables from a word
aligner's p(t | s); Dice over co-occurrence needs no aligner and, with the frequent pieces beside it, keeps what
the model needs: the report gives the share of the validation references' pieces a shortlist holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save
from tqdm import tqdm

from model.atomic import atomic_write
from model.checkpoint import ModelBundle
from model.config import PAD_ID
from model.errors import InputError
from model.shortlist import SHORTLIST, Shortlist
from training.corpora import CorpusSpec, iter_corpus

CHUNK_PAIRS = 50_000  # pairs encoded and counted at a time


@dataclass(frozen=True)
class ShortlistSettings:
    frequent: int = 500  # F: the most frequent target pieces, in every vocabulary
    per_source: int = 50  # K: candidates kept per source piece


class CooccurrenceCounts:
    """Weighted pair counts of source and target pieces, merged chunk by chunk (sparse: only seen pairs)."""

    def __init__(self, src_vocab: int, tgt_vocab: int) -> None:
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.source = np.zeros(src_vocab)  # c(s)
        self.target = np.zeros(tgt_vocab)  # c(t)
        self.codes = np.zeros(0, dtype=np.int64)  # s * tgt_vocab + t, ascending
        self.joint = np.zeros(0)  # c(s, t) of each code
        self.pairs = 0

    def add(self, src_ids: list[list[int]], tgt_ids: list[list[int]], weight: float) -> None:
        codes = []
        for s_ids, t_ids in zip(src_ids, tgt_ids):
            s, t = np.unique(np.asarray(s_ids, dtype=np.int64)), np.unique(np.asarray(t_ids, dtype=np.int64))
            self.source[s] += weight
            self.target[t] += weight
            codes.append((s[:, None] * self.tgt_vocab + t[None, :]).ravel())
        self.pairs += len(src_ids)
        if not codes:
            return
        merged, inverse = np.unique(np.concatenate([self.codes, *codes]), return_inverse=True)
        counts = np.bincount(inverse[: len(self.codes)], weights=self.joint, minlength=len(merged))
        self.joint = counts + weight * np.bincount(inverse[len(self.codes):], minlength=len(merged))
        self.codes = merged

    def shortlist(self, settings: ShortlistSettings) -> Shortlist:
        """The F most frequent target pieces and each source piece's K best others by Dice."""
        ranked = np.argsort(-self.target, kind="stable")  # ties (unseen pieces) in id order
        frequent = min(settings.frequent, self.tgt_vocab)
        s, t = np.divmod(self.codes, self.tgt_vocab)
        keep = ~np.isin(t, ranked[:frequent]) & (s != PAD_ID)
        s, t, joint = s[keep], t[keep], self.joint[keep]
        dice = 2 * joint / (self.source[s] + self.target[t])
        order = np.lexsort((t, -dice, s))  # by source piece, best first (ties: lower id)
        s, t = s[order], t[order]
        first = np.searchsorted(s, s)  # where each source piece's run starts
        rank = np.arange(len(s)) - first
        table = np.full((self.src_vocab, settings.per_source), -1, dtype=np.int64)
        within = rank < settings.per_source
        table[s[within], rank[within]] = t[within]
        return Shortlist(torch.from_numpy(ranked.copy()), frequent, torch.from_numpy(table))


def _chunks(pairs: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    iterator = iter(pairs)
    while chunk := list(islice(iterator, size)):
        yield chunk


def count_corpora(bundle: ModelBundle, specs: list[str], data_dir: str | None) -> CooccurrenceCounts:
    """Stream every corpus through the model's own SentencePiece models into co-occurrence counts."""
    langs = (bundle.source_lang, bundle.target_lang)
    counts = CooccurrenceCounts(bundle.src_tokenizer.vocab_size, bundle.tgt_tokenizer.vocab_size)
    with tqdm(unit=" pairs", desc="shortlist", disable=None) as bar:
        for text in specs:
            spec = CorpusSpec.parse(text)
            for chunk in _chunks(iter_corpus(spec.source, langs, "train", data_dir), CHUNK_PAIRS):
                src, tgt = zip(*chunk)
                counts.add(bundle.src_tokenizer.encode(list(src)), bundle.tgt_tokenizer.encode(list(tgt)),
                           spec.weight)
                bar.update(len(chunk))
    if counts.pairs == 0:
        raise InputError(f"no sentence pairs in {', '.join(specs)}")
    return counts


def coverage(bundle: ModelBundle, shortlist: Shortlist, sources: list[str], references: list[str]) -> float:
    """The share of the references' pieces that the shortlist of their own source sentence holds."""
    held = total = 0
    for src_ids, ref_ids in zip(bundle.src_tokenizer.encode(sources), bundle.tgt_tokenizer.encode(references)):
        vocab = shortlist.vocabulary(torch.tensor([src_ids or [PAD_ID]]))
        held += int(torch.isin(torch.tensor(ref_ids, dtype=torch.long), vocab.ids).sum())
        total += len(ref_ids)
    return held / max(total, 1)


def training_corpora(bundle: ModelBundle) -> list[str]:
    """The corpus specs the model folder says it trained on (config.json), for a default."""
    data = ((bundle.meta.get("training") or {}).get("config") or {}).get("data") or {}
    return list(data.get("corpora") or ([data["dataset"]] if data.get("dataset") else []))


def write_shortlist(folder: str | Path, shortlist: Shortlist) -> Path:
    path = Path(folder) / SHORTLIST
    atomic_write(path, save(shortlist.tensors(), metadata={"format": "rnnmt-shortlist"}))
    return path
