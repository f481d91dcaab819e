"""`rnnmt prepare`: clean parallel text and train SentencePiece; cached by its settings."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import sentencepiece as spm

from model.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from model.errors import DataError
from training.data import clean_pairs, default_data_dir, multi30k_file, read_lines, read_parallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """Where the parallel text comes from and how it becomes SentencePiece ids."""

    prepared_dir: str = "runs/prepared/multi30k-en-de"
    dataset: str | None = "multi30k"  # or None with explicit files below
    pair: str = "en-de"
    data_dir: str | None = None  # default: $RNNMT_DATA_DIR or ../shared/data/multi30k
    download: bool = False
    train_src: str | None = None
    train_tgt: str | None = None
    valid_src: str | None = None
    valid_tgt: str | None = None
    vocab_size: int = 8000
    joint_vocab: bool = True
    model_type: str = "unigram"  # unigram | bpe
    max_words: int = 80
    max_ratio: float = 3.0

    @property
    def langs(self) -> tuple[str, str]:
        parts = self.pair.split("-")
        if len(parts) != 2 or not all(parts):
            raise DataError(f"data.pair must look like 'en-de', got {self.pair!r}")
        return parts[0], parts[1]

    def sources(self) -> dict[str, Path]:
        """The four input files: train_src, train_tgt, valid_src, valid_tgt."""
        explicit = {k: getattr(self, k) for k in ("train_src", "train_tgt", "valid_src", "valid_tgt")}
        if all(explicit.values()):
            return {k: Path(v) for k, v in explicit.items()}
        if self.dataset != "multi30k":
            raise DataError("give data.dataset=multi30k or all of train_src, train_tgt, valid_src, valid_tgt")
        src, tgt = self.langs
        data_dir = Path(self.data_dir) if self.data_dir else default_data_dir()
        files = {
            "train_src": multi30k_file(data_dir, "train", src, self.download),
            "train_tgt": multi30k_file(data_dir, "train", tgt, self.download),
            "valid_src": multi30k_file(data_dir, "val", src, self.download),
            "valid_tgt": multi30k_file(data_dir, "val", tgt, self.download),
        }
        return {k: Path(v) if v else files[k] for k, v in explicit.items()}


def spm_files(prepared: Path, joint: bool) -> tuple[Path, Path]:
    if joint:
        return prepared / "spm.model", prepared / "spm.model"
    return prepared / "src.spm.model", prepared / "tgt.spm.model"


def train_sentencepiece(lines: list[str], prefix: Path, config: DataConfig) -> None:
    try:
        spm.SentencePieceTrainer.Train(
            sentence_iterator=iter(lines),
            model_prefix=str(prefix),
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=1.0,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            input_sentence_size=2_000_000, shuffle_input_sentence=True,
            num_threads=2, minloglevel=2, hard_vocab_limit=False,  # small corpora get a smaller vocabulary
        )
    except RuntimeError as exc:
        raise DataError(f"SentencePiece training failed: {exc}") from None


def prepare(config: DataConfig, force: bool = False) -> Path:
    """Clean the corpus and train the tokenizer into config.prepared_dir; reuse it when settings match."""
    prepared = Path(config.prepared_dir)
    stamp = prepared / "prepare.json"
    settings = asdict(config)
    if not force and stamp.is_file() and json.loads(stamp.read_text()).get("settings") == settings:
        log.info("prepared data is up to date in %s", prepared)
        return prepared
    sources = config.sources()
    prepared.mkdir(parents=True, exist_ok=True)
    report = {}
    for split in ("train", "valid"):
        src, tgt = read_parallel(sources[f"{split}_src"], sources[f"{split}_tgt"])
        if split == "train":
            src, tgt, cleaned = clean_pairs(src, tgt, config.max_words, config.max_ratio)
            report["train"] = {"kept": cleaned.kept, "dropped": cleaned.dropped}
            log.info("train: kept %d pairs, dropped %s", cleaned.kept, cleaned.dropped or "none")
            if cleaned.kept == 0:
                raise DataError("no training pairs left after cleaning")
        else:
            report["valid"] = {"kept": len(src)}
        (prepared / f"{split}.src").write_text("\n".join(src) + "\n", encoding="utf-8")
        (prepared / f"{split}.tgt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    train_src = read_lines(prepared / "train.src")
    train_tgt = read_lines(prepared / "train.tgt")
    if config.joint_vocab:
        train_sentencepiece(train_src + train_tgt, prepared / "spm", config)
    else:
        train_sentencepiece(train_src, prepared / "src.spm", config)
        train_sentencepiece(train_tgt, prepared / "tgt.spm", config)
    stamp.write_text(json.dumps({"settings": settings, "report": report}, indent=2) + "\n")
    return prepared
