"""`rnnmt tune`: a model's decoding defaults (beam size, length penalty, reverse-model weight) chosen on dev sets,
never on a test set.

Every (beam size, length penalty) decodes every dev set in full; with a reverse model (model/rerank.py) each beam
is scored by it once and reranked with every weight of the grid. The winner has the best mean BLEU over the dev
sets (ties: no reranking, then the smaller beam, then the penalty nearer 1). It is written into the model folder's
config.json `decoding` section, which translate, evaluate, the service and the release all read
(`ModelBundle.decoding`), together with the grid's scores under `tuning`, so the card can say how it was chosen.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from model.atomic import atomic_write
from model.checkpoint import CONFIG, read_config
from model.errors import InputError
from model.rerank import add_source_log_probs, reranked
from model.translator import Translator
from training.evaluate import corpus_scores


@dataclass(frozen=True)
class DevSet:
    name: str  # e.g. "multi30k:val"
    sources: list[str]
    references: list[str]


def check_dev_names(names: list[str]) -> None:
    """Tuning on a test set would make its scores meaningless: refuse any name that says test."""
    if not names:
        raise InputError("give at least one dev set, e.g. --testset multi30k:val --testset ding:dev")
    tests = [n for n in names if "test" in n.lower()]
    if tests:
        raise InputError(f"tune on dev sets only, not {', '.join(tests)}: test scores must stay unseen")


def tune_decoding(translator: Translator, dev_sets: list[DevSet], beam_sizes: list[int],
                  length_penalties: list[float], reverse_weights: list[float] = (0.0,)) -> dict[str, Any]:
    """Decode every dev set with every (beam size, length penalty), reranked with every reverse weight (a weight
    > 0 needs translator.reverse); the scores and the best setting."""
    if any(w > 0 for w in reverse_weights) and translator.reverse is None:
        raise InputError("reverse weights above 0 need a reverse model to rerank with")
    grid = list(itertools.product(beam_sizes, length_penalties))
    rows, signature = [], ""
    for beam, penalty in tqdm(grid, desc="tune", unit=" setting"):
        weights = reverse_weights if beam > 1 else [0.0]  # greedy has no beam to rerank
        config = translator.defaults.changed(beam_size=beam, length_penalty=penalty, n_best=beam, reverse_weight=0.0)
        bleu: dict[float, dict[str, float]] = {w: {} for w in weights}
        for dev in dev_sets:
            translations = translator.translate(dev.sources, config)  # the whole beam, best first
            if any(w > 0 for w in weights):
                add_source_log_probs(translator.reverse, translations)
            for weight in weights:
                scores = corpus_scores([t.text for t in reranked(translations, weight, 1)], dev.references)
                bleu[weight][dev.name], signature = scores.bleu, scores.bleu_signature
        rows += [{"beam_size": beam, "length_penalty": penalty, "reverse_weight": w, "bleu": bleu[w],
                  "mean_bleu": round(sum(bleu[w].values()) / len(bleu[w]), 2)} for w in weights]
    best = max(rows, key=lambda r: (r["mean_bleu"], -r["reverse_weight"], -r["beam_size"],
                                    -abs(r["length_penalty"] - 1.0)))
    return {"dev_sets": [d.name for d in dev_sets], "bleu_signature": signature, "grid": rows,
            "best": {k: best[k] for k in ("beam_size", "length_penalty", "reverse_weight")}}


def write_decoding(folder: Path, result: dict[str, Any]) -> None:
    """Store the winner as the folder's decoding defaults, and the grid beside it (config.json, atomically)."""
    config = read_config(folder)
    config["decoding"] = {**config.get("decoding", {}), **result["best"]}
    config["tuning"] = {k: result[k] for k in ("dev_sets", "bleu_signature", "grid")}
    atomic_write(folder / CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def format_tuning(result: dict[str, Any]) -> str:
    names = result["dev_sets"]
    lines = [f"{'beam':>4} {'lp':>5} {'rev':>5} " + " ".join(f"{n:>18}" for n in names) + f" {'mean':>6}"]
    for row in result["grid"]:
        lines.append(f"{row['beam_size']:>4} {row['length_penalty']:>5.2f} {row.get('reverse_weight', 0.0):>5.2f} "
                     + " ".join(f"{row['bleu'][n]:>18.2f}" for n in names) + f" {row['mean_bleu']:>6.2f}")
    best = result["best"]
    lines.append(f"best: beam {best['beam_size']}, length penalty {best['length_penalty']}, reverse weight "
                 f"{best.get('reverse_weight', 0.0)} ({result['bleu_signature']})")
    return "\n".join(lines)
