"""Token-id shards: a prepared corpus on disk as flat id arrays, read through numpy memmaps.

A split (`train`) is four raw little-endian files plus an examples index:

    train.src.ids   uint16/uint32   every source sentence's ids, one after another (no BOS/EOS)
    train.src.off   int64           n+1 offsets: sentence i is ids[off[i]:off[i+1]]
    train.tgt.ids / train.tgt.off   the same for the target side
    train.examples  int64           the pair index of every training example (a corpus of weight 2 appears twice)

Nothing is held in Python lists: memory stays flat whatever the corpus size, and the page cache is shared by the
ranks of a `torchrun` job (each reads only the rows of its own batches).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from itertools import chain
from pathlib import Path
from typing import BinaryIO

import numpy as np

from model.atomic import atomic_open, atomic_write

FORMAT = 1


def id_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 65535 else np.dtype("<u4")


class ShardWriter:
    """Appends (source ids, target ids) pairs of one split. Used as a context manager: every file is written
    through model/atomic.py and replaces the old one only when the block ends cleanly; `split.shards.json`,
    written last by `close()`, says the set is complete."""

    def __init__(self, folder: Path, split: str, vocab_size: int) -> None:
        self.folder, self.split, self.dtype = folder, split, id_dtype(vocab_size)
        self.count = 0
        self._stack = ExitStack()
        self._files: dict[str, BinaryIO] = {}
        self._ends = {"src": 0, "tgt": 0}

    def __enter__(self) -> ShardWriter:
        for side in ("src", "tgt"):
            for kind in ("ids", "off"):
                name = f"{side}.{kind}"
                self._files[name] = self._stack.enter_context(atomic_open(self.folder / f"{self.split}.{name}"))
            np.zeros(1, dtype="<i8").tofile(self._files[f"{side}.off"])
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.__exit__(*exc_info)

    def add(self, src: list[list[int]], tgt: list[list[int]]) -> None:
        """A chunk of pairs (same length lists)."""
        for side, seqs in (("src", src), ("tgt", tgt)):
            lengths = np.fromiter(map(len, seqs), dtype="<i8", count=len(seqs))
            flat = np.fromiter(chain.from_iterable(seqs), dtype=self.dtype, count=int(lengths.sum()))
            flat.tofile(self._files[f"{side}.ids"])
            (self._ends[side] + np.cumsum(lengths)).astype("<i8").tofile(self._files[f"{side}.off"])
            self._ends[side] += int(lengths.sum())
        self.count += len(src)

    def close(self, examples: np.ndarray) -> dict:
        """Write the examples index, publish the id files, then the metadata that marks the set complete."""
        atomic_write(self.folder / f"{self.split}.examples", examples.astype("<i8").tobytes())
        self._stack.close()
        meta = {"format": FORMAT, "pairs": self.count, "examples": int(len(examples)), "dtype": self.dtype.str}
        atomic_write(self.folder / f"{self.split}.shards.json", json.dumps(meta, indent=2) + "\n")
        return meta


class TokenCorpus:
    """A memory-mapped split: `len()` examples, their lengths as arrays, and `pairs(indices)` for a batch."""

    def __init__(self, folder: Path, split: str) -> None:
        meta_path = folder / f"{split}.shards.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: shard format {meta.get('format')} (this rnnmt reads {FORMAT})")
        dtype = np.dtype(meta["dtype"])

        def load(name: str, kind: np.dtype) -> np.ndarray:
            path = folder / f"{split}.{name}"
            return np.memmap(path, dtype=kind, mode="r") if path.stat().st_size else np.zeros(0, dtype=kind)

        self.src_ids, self.tgt_ids = load("src.ids", dtype), load("tgt.ids", dtype)
        self.src_off, self.tgt_off = load("src.off", np.dtype("<i8")), load("tgt.off", np.dtype("<i8"))
        self.examples = load("examples", np.dtype("<i8"))
        pair_src_len, pair_tgt_len = np.diff(self.src_off), np.diff(self.tgt_off)
        self.src_lens = pair_src_len[self.examples].astype(np.int32)  # (examples,)
        self.tgt_lens = pair_tgt_len[self.examples].astype(np.int32)

    def __len__(self) -> int:
        return len(self.examples)

    def pairs(self, indices: np.ndarray) -> tuple[list[list[int]], list[list[int]]]:
        """Source and target ids of these examples."""
        src, tgt = [], []
        for pair in self.examples[indices].tolist():
            src.append(self.src_ids[self.src_off[pair]:self.src_off[pair + 1]].tolist())
            tgt.append(self.tgt_ids[self.tgt_off[pair]:self.tgt_off[pair + 1]].tolist())
        return src, tgt
