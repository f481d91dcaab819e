"""Corpus BLEU and chrF with sacrebleu, signatures included; `rnnmt evaluate`."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sacrebleu.metrics import BLEU, CHRF

from model.atomic import atomic_write
from model.errors import DataError, InputError
from model.search import SearchConfig
from model.translator import Translator
from training import ding
from training.corpora import ding_path
from training.data import default_data_dir, multi30k_file, read_lines


@dataclass
class Scores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    bleu_detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def corpus_scores(hypotheses: list[str], references: list[str], lowercase: bool = False,
                  tokenize: str | None = None) -> Scores:
    bleu = BLEU(lowercase=lowercase, tokenize=tokenize)
    chrf = CHRF(lowercase=lowercase)
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return Scores(round(bleu_score.score, 2), round(chrf_score.score, 2), str(bleu.get_signature()),
                  str(chrf.get_signature()), str(bleu_score))


def ding_files(split: str, source_lang: str, target_lang: str) -> tuple[Path, Path]:
    """The Ding dev or test split (training/ding.py) written once as two plain files in the cache folder."""
    if {source_lang, target_lang} != {"de", "en"}:
        raise InputError(f"the Ding test sets are German-English, not {source_lang}-{target_lang}")
    path = ding_path()
    if not path.is_file():
        raise DataError(f"Ding dictionary not found at {path}: {ding.INSTALL_HINT}")
    info = path.stat()
    folder = cache_dir() / f"ding-{info.st_size}-{int(info.st_mtime)}"
    files = {lang: folder / f"{split}.{lang}" for lang in ("de", "en")}
    if not all(f.is_file() for f in files.values()):
        folder.mkdir(parents=True, exist_ok=True)
        pairs = ding.sentence_pairs(split, path)
        for index, lang in enumerate(("de", "en")):
            atomic_write(files[lang], "".join(pair[index] + "\n" for pair in pairs))
    return files[source_lang], files[target_lang]


def cache_dir() -> Path:
    return Path(os.environ.get("RNNMT_CACHE_DIR") or Path.home() / ".cache" / "rnnmt")


def resolve_testset(name: str, source_lang: str, target_lang: str, data_dir: str | None) -> tuple[Path, Path]:
    """'multi30k:test_2016_flickr' or 'ding:test' -> (source file, reference file)."""
    dataset, _, split = name.partition(":")
    if dataset == "ding" and split in ("dev", "test"):
        return ding_files(split, source_lang, target_lang)
    if dataset != "multi30k" or not split:
        raise InputError(f"unknown test set {name!r}; use multi30k:val, multi30k:test_2016_flickr, ding:dev or "
                         "ding:test")
    folder = Path(data_dir) if data_dir else default_data_dir()
    return multi30k_file(folder, split, source_lang), multi30k_file(folder, split, target_lang)


def reranked_with(translator: Translator, config: SearchConfig) -> list[str]:
    """The models whose scores rerank the beams under these settings (model/rerank.py)."""
    if not translator.reranks(config):
        return []
    weighted = ((translator.reverse, config.reverse_weight), (translator.right_to_left, config.right_to_left_weight))
    return [model.bundle.name for model, weight in weighted if model is not None and weight > 0]


def evaluate(translator: Translator, src_file: Path, ref_file: Path, config: SearchConfig,
             lowercase: bool = False, tokenize: str | None = None) -> dict[str, Any]:
    sources, references = read_lines(src_file), read_lines(ref_file)
    if len(sources) != len(references):
        raise DataError(f"{src_file} has {len(sources)} lines but {ref_file} has {len(references)}")
    start = time.perf_counter()
    hypotheses = [t.text for t in translator.translate(sources, config)]
    seconds = time.perf_counter() - start
    scores = corpus_scores(hypotheses, references, lowercase, tokenize)
    return {
        **scores.as_dict(),
        "src": str(src_file), "ref": str(ref_file), "sentences": len(sources),
        "decode": asdict(config),
        "reranked_with": reranked_with(translator, config),
        "wall_time_s": round(seconds, 2),
        "sentences_per_s": round(len(sources) / seconds, 1),
        "model": str(translator.bundle.path), "hypotheses": hypotheses,
    }
