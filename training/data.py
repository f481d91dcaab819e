"""Parallel text: reading (plain or .gz), cleaning, Multi30k locations, and token-bucket batching."""

from __future__ import annotations

import gzip
import logging
import os
import sys
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.config import BOS_ID, EOS_ID, PAD_ID
from model.errors import DataError

log = logging.getLogger(__name__)

MULTI30K_LANGS = ("en", "de", "fr", "cs")
MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{split}.{lang}.gz"


def default_data_dir() -> Path:
    """$RNNMT_DATA_DIR, else ../shared/data/multi30k beside the checkout (or the working directory)."""
    if os.environ.get("RNNMT_DATA_DIR"):
        return Path(os.environ["RNNMT_DATA_DIR"])
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base.parent / "shared" / "data" / "multi30k"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data" / "multi30k"


def multi30k_file(data_dir: Path, split: str, lang: str, download: bool = False) -> Path:
    if split not in MULTI30K_SPLITS or lang not in MULTI30K_LANGS:
        raise DataError(f"Multi30k has splits {MULTI30K_SPLITS} and languages {MULTI30K_LANGS}; got {split}.{lang}")
    path = data_dir / f"{split}.{lang}.gz"
    if path.is_file():
        return path
    if not download:
        raise DataError(f"Multi30k file {path} not found (set RNNMT_DATA_DIR or --data-dir, or pass --download)")
    path.parent.mkdir(parents=True, exist_ok=True)
    url = MULTI30K_URL.format(split=split, lang=lang)
    log.info("downloading %s", url)
    try:
        urllib.request.urlretrieve(url, path)  # noqa: S310 - fixed https URL
    except OSError as exc:
        raise DataError(f"could not download {url}: {exc}") from None
    return path


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file, plain or gzip-compressed (told by its first bytes), without line endings.
    `-` is standard input; pipes, FIFOs and process substitution (`<(zcat val.de.gz)`) read like files."""
    path = Path(path)
    if str(path) != "-" and (not path.exists() or path.is_dir()):
        raise DataError(f"file not found: {path}")
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:  # read once: a pipe cannot be reopened or rewound
                data = handle.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        lines = data.decode("utf-8").split("\n")
        if lines[-1] == "":  # the newline that ends the last line (or an empty file)
            lines.pop()
        return [line.rstrip("\r") for line in lines]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> tuple[list[str], list[str]]:
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise DataError(f"misaligned parallel files: {src_path} has {len(src)} lines, {tgt_path} has {len(tgt)}")
    return src, tgt


@dataclass(frozen=True)
class CleanReport:
    kept: int
    dropped: dict[str, int]


def clean_pair(src: str, tgt: str, max_words: int, max_ratio: float) -> tuple[str, str, str | None]:
    """The pair with single spaces, and why it is dropped (None if kept): an empty side, a side over max_words
    words, or a length ratio over max_ratio (for sides longer than three words)."""
    src, tgt = " ".join(src.split()), " ".join(tgt.split())
    if not src or not tgt:
        return src, tgt, "empty"
    ns, nt = src.count(" ") + 1, tgt.count(" ") + 1
    if max(ns, nt) > max_words:
        return src, tgt, "too_long"
    if max(ns, nt) / min(ns, nt) > max_ratio and max(ns, nt) > 3:
        return src, tgt, "length_ratio"
    return src, tgt, None


def clean_pairs(
    src: list[str], tgt: list[str], max_words: int, max_ratio: float
) -> tuple[list[str], list[str], CleanReport]:
    """clean_pair over lists."""
    kept_src, kept_tgt, dropped = [], [], Counter()
    for s, t in zip(src, tgt):
        s, t, reason = clean_pair(s, t, max_words, max_ratio)
        if reason:
            dropped[reason] += 1
        else:
            kept_src.append(s)
            kept_tgt.append(t)
    return kept_src, kept_tgt, CleanReport(kept=len(kept_src), dropped=dict(dropped))


@dataclass
class Batch:
    """src: (batch, src_len); src_lengths: (batch,); tgt_in / tgt_out: (batch, tgt_len) BOS-shifted pair."""

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    num_tgt_tokens: int

    def to(self, device: torch.device) -> Batch:
        return Batch(self.src.to(device), self.src_lengths.to(device), self.tgt_in.to(device),
                     self.tgt_out.to(device), self.num_tgt_tokens)


def pad(sequences: list[list[int]]) -> torch.Tensor:
    """(batch, max_len) long tensor, PAD_ID after each sequence."""
    out = torch.full((len(sequences), max(len(s) for s in sequences)), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def make_batch(src_ids: list[list[int]], tgt_ids: list[list[int]], right_to_left: bool = False) -> Batch:
    """A batch; a right-to-left model (ModelConfig.right_to_left) learns each target's pieces last to first."""
    src = [s + [EOS_ID] for s in src_ids]
    if right_to_left:
        tgt_ids = [t[::-1] for t in tgt_ids]
    tgt_in = pad([[BOS_ID] + t for t in tgt_ids])
    tgt_out = pad([t + [EOS_ID] for t in tgt_ids])
    lengths = torch.tensor([len(s) for s in src], dtype=torch.long)
    return Batch(pad(src), lengths, tgt_in, tgt_out, sum(len(t) + 1 for t in tgt_ids))


def token_batches(
    src_lens: Sequence[int] | np.ndarray, tgt_lens: Sequence[int] | np.ndarray, batch_tokens: int, seed: int,
    epoch: int, shuffle: bool = True,
) -> list[np.ndarray]:
    """Index arrays of batches whose padded size (sentences x longest side) stays under batch_tokens.

    Length bucketing: shuffle, cut into pools of ~200 batches, sort each pool by target and then source
    length, cut into batches, shuffle the batches. Deterministic for (seed, epoch), which makes resuming
    exact. Lengths and indices stay numpy arrays: millions of examples cost megabytes, not Python lists. The pool
    size trades randomness for padding: on Multi30k en-de at 1100 tokens, pools of 50 batches padded sources by
    23% (a target length held too few sentences to group sources too); pools of 200 pad sources by 10%, targets
    by 0.4%.
    """
    src_lens = np.asarray(src_lens, dtype=np.int64)
    tgt_lens = np.asarray(tgt_lens, dtype=np.int64)
    rng = np.random.default_rng(seed * 100_003 + epoch)
    order = rng.permutation(len(src_lens)) if shuffle else np.arange(len(src_lens))
    mean_len = max(1, int(tgt_lens.sum()) // max(1, len(tgt_lens)))
    pool_size = max(1, 200 * batch_tokens // mean_len)
    longest_side = np.maximum(src_lens, tgt_lens) + 1
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool_size):
        pool = order[start : start + pool_size]
        pool = pool[np.lexsort((src_lens[pool], tgt_lens[pool]))]  # by target length, then source length
        cuts, count, longest = [], 0, 0
        for position, length in enumerate(longest_side[pool].tolist()):
            if count and max(longest, length) * (count + 1) > batch_tokens:
                cuts.append(position)
                count, longest = 0, 0
            count += 1
            longest = max(longest, length)
        batches.extend(np.split(pool, cuts))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
