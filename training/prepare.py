"""`rnnmt prepare`: stream parallel text, clean and deduplicate it, train SentencePiece on a sample, and write
token-id shards (training/shards.py). Memory stays bounded whatever the corpus size; cached by its settings.

Two passes, each with a progress bar: (1) read every corpus once, clean each pair, write the kept ones to a
temporary TSV, remember an 8-byte hash a pair (deduplication) and keep a fixed-size random sample for
SentencePiece; (2) encode the first occurrence of every pair into shards. A corpus's weight becomes how many
times its pairs appear in the examples index (2 = twice; 0.5 = the half whose hash falls below 0.5).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm
from tqdm import tqdm

from model.atomic import atomic_write
from model.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from model.errors import DataError
from training.corpora import CorpusSpec, iter_corpus, mix
from training.data import clean_pair
from training.shards import FORMAT, ShardWriter

log = logging.getLogger(__name__)

CHUNK = 20_000  # pairs encoded at a time


@dataclass(frozen=True)
class DataConfig:
    """Where the parallel text comes from and how it becomes SentencePiece ids."""

    prepared_dir: str = "runs/prepared/multi30k-en-de"
    dataset: str | None = "multi30k"  # multi30k | ding | None with explicit files or corpora below
    pair: str = "en-de"
    data_dir: str | None = None  # default: $RNNMT_DATA_DIR or ../shared/data/multi30k
    download: bool = False
    train_src: str | None = None
    train_tgt: str | None = None
    valid_src: str | None = None
    valid_tgt: str | None = None
    corpora: list | None = None  # ["multi30k:3", "ding-sentences:3", "tm.tmx"]: see training/corpora.py
    valid_corpora: list | None = None  # default: the dataset's validation split
    vocab_size: int = 8000
    joint_vocab: bool = True
    model_type: str = "unigram"  # unigram | bpe
    spm_sample_pairs: int = 100_000  # SentencePiece trains on a random sample of this many pairs (its memory grows
    # with its input: 100k pairs of 13 words took ~0.5 GB)
    spm_from: str = ""  # a model folder whose SentencePiece model(s) to reuse instead of training (fine-tuning)
    max_words: int = 80
    max_ratio: float = 3.0
    seed: int = 1

    @property
    def langs(self) -> tuple[str, str]:
        parts = self.pair.split("-")
        if len(parts) != 2 or not all(parts):
            raise DataError(f"data.pair must look like 'en-de', got {self.pair!r}")
        return parts[0], parts[1]

    def specs(self, split: str) -> list[str]:
        """The corpus specs of 'train' or 'valid': corpora, explicit files, or the dataset."""
        named = self.corpora if split == "train" else self.valid_corpora
        if named:
            return [named] if isinstance(named, str) else list(named)
        files = (self.train_src, self.train_tgt) if split == "train" else (self.valid_src, self.valid_tgt)
        if all(files):
            return [f"{files[0]},{files[1]}"]
        if any(files):
            raise DataError(f"give both {split}_src and {split}_tgt")
        if self.dataset in ("multi30k", "ding"):
            return [self.dataset]
        if split == "valid" and self.corpora:
            raise DataError("give data.valid_corpora (or valid_src and valid_tgt) for these corpora")
        raise DataError("give data.dataset (multi30k or ding), data.corpora, or train_src/train_tgt files")


def spm_files(prepared: Path, joint: bool) -> tuple[Path, Path]:
    if joint:
        return prepared / "spm.model", prepared / "spm.model"
    return prepared / "src.spm.model", prepared / "tgt.spm.model"


def copy_sentencepiece(folder: Path, prepared: Path, joint: bool) -> None:
    """Take a model folder's tokenizer(s), so that its weights can start a training run on this data."""
    config_path = folder / "config.json"
    try:
        names = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer", {})
        models = [(folder / names.get(side, "spm.model")).read_bytes() for side in ("src", "tgt")]
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"data.spm_from: cannot read the tokenizer of the model folder {folder}: {exc}") from None
    if joint and models[0] != models[1]:
        raise DataError(f"data.spm_from: {folder} has separate source and target tokenizers; set "
                        "data.joint_vocab: false")
    for path, data in zip(spm_files(prepared, joint), models, strict=True):
        atomic_write(path, data)


def train_sentencepiece(lines: list[str], prefix: Path, config: DataConfig) -> None:
    try:
        spm.SentencePieceTrainer.Train(
            sentence_iterator=iter(lines),
            model_prefix=str(prefix),
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=1.0,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            input_sentence_size=0, shuffle_input_sentence=False,  # all of it: already a random sample
            num_threads=2, minloglevel=2, hard_vocab_limit=False,  # small corpora get a smaller vocabulary
        )
    except RuntimeError as exc:
        raise DataError(f"SentencePiece training failed: {exc}") from None


def pair_hash(src: str, tgt: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{src}\t{tgt}".encode(), digest_size=8).digest(), "little")


@dataclass
class Scan:
    """What pass 1 learned: per kept pair its hash and corpus, the sample, and the counts by rule."""

    hashes: np.ndarray  # (kept,) uint64
    corpus: np.ndarray  # (kept,) int32
    sample: list[tuple[str, str]]
    counts: Counter


def scan(config: DataConfig, specs: list[CorpusSpec], tsv: Path) -> Scan:
    """Pass 1: read, clean, write kept pairs to tsv; hashes and a reservoir sample for SentencePiece."""
    rng = random.Random(config.seed)
    hashes: list[np.ndarray] = []  # 8 bytes a kept pair, in numpy chunks (a Python int would take 36)
    corpus: list[np.ndarray] = []
    sample: list[tuple[str, str]] = []
    counts: Counter = Counter()
    seen = 0

    def keep_chunk(chunk: list[int], index: int) -> None:
        hashes.append(np.array(chunk, dtype=np.uint64))
        corpus.append(np.full(len(chunk), index, dtype=np.int32))
        counts[f"corpus:{specs[index].source}"] += len(chunk)
        chunk.clear()

    with open(tsv, "w", encoding="utf-8") as out, tqdm(desc="read + clean", unit=" pairs", unit_scale=True,
                                                         mininterval=1.0) as bar:
        for index, spec in enumerate(specs):
            chunk: list[int] = []
            read = 0
            for read, (src, tgt) in enumerate(iter_corpus(spec.source, config.langs, "train", config.data_dir,
                                                          config.download), 1):
                if read % 4096 == 0:
                    bar.update(4096)
                src, tgt, reason = clean_pair(src, tgt, config.max_words, config.max_ratio)
                if reason:
                    counts[reason] += 1
                    continue
                out.write(f"{src}\t{tgt}\n")
                chunk.append(pair_hash(src, tgt))
                if len(chunk) == CHUNK:
                    keep_chunk(chunk, index)
                seen += 1
                if len(sample) < config.spm_sample_pairs:
                    sample.append((src, tgt))
                else:
                    slot = rng.randrange(seen)
                    if slot < config.spm_sample_pairs:
                        sample[slot] = (src, tgt)
            keep_chunk(chunk, index)
            counts.setdefault(f"corpus:{spec.source}", 0)
            counts["read"] += read
            bar.update(read % 4096)
    return Scan(np.concatenate(hashes), np.concatenate(corpus), sample, counts)


def repeats(hashes: np.ndarray, weights: np.ndarray, seed: int) -> np.ndarray:
    """How many times each pair appears: the weight's whole part, plus one where the pair's hash (mixed with the
    seed by splitmix64's finalizer) falls below its fractional part: a fixed, reproducible sample."""
    whole = np.floor(weights).astype(np.int64)
    with np.errstate(over="ignore"):
        z = hashes + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    uniform = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # 53 random bits in [0, 1)
    return whole + (uniform < weights - whole)


def encode_shards(config: DataConfig, folder: Path, tsv: Path, keep: np.ndarray, reps: np.ndarray) -> dict:
    """Pass 2: encode the kept first occurrences into shards; the examples index repeats them by weight."""
    src_spm, tgt_spm = spm_files(folder, config.joint_vocab)
    src_sp = spm.SentencePieceProcessor(model_file=str(src_spm))
    tgt_sp = src_sp if config.joint_vocab else spm.SentencePieceProcessor(model_file=str(tgt_spm))
    vocab_size = max(src_sp.get_piece_size(), tgt_sp.get_piece_size())
    threads = min(4, os.cpu_count() or 1)

    def flush(src: list[str], tgt: list[str]) -> None:
        writer.add(src_sp.encode(src, num_threads=threads), tgt_sp.encode(tgt, num_threads=threads))
        src.clear()
        tgt.clear()

    src_chunk: list[str] = []
    tgt_chunk: list[str] = []
    with ShardWriter(folder, "train", vocab_size) as writer, open(tsv, encoding="utf-8") as lines, \
            tqdm(total=int(keep.sum()), desc="encode", unit=" pairs", unit_scale=True, mininterval=1.0) as bar:
        for line, kept in zip(lines, keep.tolist()):
            if kept:
                src, tgt = line.rstrip("\n").split("\t")
                src_chunk.append(src)
                tgt_chunk.append(tgt)
                if len(src_chunk) == CHUNK:
                    bar.update(CHUNK)
                    flush(src_chunk, tgt_chunk)
        bar.update(len(src_chunk))
        flush(src_chunk, tgt_chunk)
        return writer.close(np.repeat(np.arange(writer.count, dtype=np.int64), reps))


def prepare(config: DataConfig, force: bool = False) -> Path:
    """Clean the corpus, train the tokenizer and write shards into config.prepared_dir; reuse when settings match."""
    prepared = Path(config.prepared_dir)
    stamp = prepared / "prepare.json"
    settings = {**asdict(config), "format": FORMAT}
    if not force and stamp.is_file() and json.loads(stamp.read_text()).get("settings") == settings:
        log.info("prepared data is up to date in %s", prepared)
        return prepared
    specs = [CorpusSpec.parse(text) for text in config.specs("train")]
    valid_src, valid_tgt, valid_counts = mix(config.specs("valid"), config.langs, "valid", config.data_dir,
                                             download=config.download)
    prepared.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)  # the stamp commits the folder: a kill while it is rewritten must not reuse it
    tsv = prepared / ".train.clean.tsv.tmp"
    try:
        found = scan(config, specs, tsv)
        if len(found.hashes) == 0:
            raise DataError("no training pairs left after cleaning")
        _, first = np.unique(found.hashes, return_index=True)
        keep = np.zeros(len(found.hashes), dtype=bool)
        keep[first] = True
        duplicates = int(len(keep) - keep.sum())
        log.info("train: read %d pairs; %d duplicates; %s", found.counts["read"], duplicates,
                 f"SentencePiece from {config.spm_from}" if config.spm_from
                 else f"training SentencePiece on {len(found.sample)} sampled pairs")
        if config.spm_from:
            copy_sentencepiece(Path(config.spm_from), prepared, config.joint_vocab)
        elif config.joint_vocab:
            train_sentencepiece([s for pair in found.sample for s in pair], prepared / "spm", config)
        else:
            train_sentencepiece([s for s, _ in found.sample], prepared / "src.spm", config)
            train_sentencepiece([t for _, t in found.sample], prepared / "tgt.spm", config)
        weights = np.array([spec.weight for spec in specs], dtype=np.float64)[found.corpus[keep]]
        reps = repeats(found.hashes[keep], weights, config.seed)
        shards = encode_shards(config, prepared, tsv, keep, reps)
    finally:
        tsv.unlink(missing_ok=True)
    atomic_write(prepared / "valid.src", "\n".join(valid_src) + "\n")
    atomic_write(prepared / "valid.tgt", "\n".join(valid_tgt) + "\n")
    dropped = {k: v for k, v in found.counts.items() if k != "read" and not k.startswith("corpus:")}
    report = {
        "train": {"read": found.counts["read"], "kept": shards["pairs"], "examples": shards["examples"],
                  "dropped": {**dropped, **({"duplicate": duplicates} if duplicates else {})},
                  "corpora": {spec.source: found.counts[f"corpus:{spec.source}"] for spec in specs}},
        "valid": {"kept": len(valid_src), "corpora": valid_counts},
    }
    log.info("train: kept %d pairs, %d examples, dropped %s", shards["pairs"], shards["examples"],
             report["train"]["dropped"] or "none")
    atomic_write(stamp, json.dumps({"settings": settings, "report": report}, indent=2) + "\n")
    return prepared
