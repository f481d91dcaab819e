"""`rnnmt tune`: a model's decoding defaults (beam size, length penalty, the reranking models' weights) chosen on
dev sets, never on a test set.

Every (beam size, length penalty) decodes every dev set in full; with a reverse or a right-to-left model
(model/rerank.py) each beam is scored by them once and reranked with every pair of weights of the grid. The winner
has the best mean BLEU over the dev sets (ties: less reranking, then the smaller beam, then the penalty nearer 1).
It is written into the model folder's config.json `decoding` section, which translate, evaluate, the service and
the release all read (`ModelBundle.decoding`), together with the grid's scores under `tuning`, so the card can say
how it was chosen.
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
from model.rerank import add_right_to_left_log_probs, add_source_log_probs, reranked
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
                  length_penalties: list[float], reverse_weights: list[float] = (0.0,),
                  right_to_left_weights: list[float] = (0.0,)) -> dict[str, Any]:
    """Decode every dev set with every (beam size, length penalty), reranked with every (reverse weight,
    right-to-left weight) (a weight > 0 needs translator.reverse / right_to_left); the scores and the best."""
    if any(w > 0 for w in reverse_weights) and translator.reverse is None:
        raise InputError("reverse weights above 0 need a reverse model to rerank with")
    if any(w > 0 for w in right_to_left_weights) and translator.right_to_left is None:
        raise InputError("right-to-left weights above 0 need a right-to-left model to rerank with")
    grid = list(itertools.product(beam_sizes, length_penalties))
    rows, signature = [], ""
    for beam, penalty in tqdm(grid, desc="tune", unit=" setting"):
        pairs = list(itertools.product(reverse_weights, right_to_left_weights)) if beam > 1 else [(0.0, 0.0)]
        config = translator.defaults.changed(beam_size=beam, length_penalty=penalty, n_best=beam, reverse_weight=0.0,
                                             right_to_left_weight=0.0)
        bleu: dict[tuple[float, float], dict[str, float]] = {pair: {} for pair in pairs}
        for dev in dev_sets:
            translations = translator.translate(dev.sources, config)  # the whole beam, best first
            if any(rev > 0 for rev, _ in pairs):
                add_source_log_probs(translator.reverse, translations)
            if any(r2l > 0 for _, r2l in pairs):
                add_right_to_left_log_probs(translator.right_to_left, translations)
            for rev, r2l in pairs:
                ranked = reranked(translations, config.changed(n_best=1, reverse_weight=rev, right_to_left_weight=r2l))
                scores = corpus_scores([t.text for t in ranked], dev.references)
                bleu[(rev, r2l)][dev.name], signature = scores.bleu, scores.bleu_signature
        rows += [{"beam_size": beam, "length_penalty": penalty, "reverse_weight": rev, "right_to_left_weight": r2l,
                  "bleu": bleu[(rev, r2l)], "mean_bleu": round(sum(bleu[(rev, r2l)].values()) / len(dev_sets), 2)}
                 for rev, r2l in pairs]
    best = max(rows, key=lambda r: (r["mean_bleu"], -r["reverse_weight"] - r["right_to_left_weight"],
                                    -r["beam_size"], -abs(r["length_penalty"] - 1.0)))
    keys = ("beam_size", "length_penalty", "reverse_weight", "right_to_left_weight")
    return {"dev_sets": [d.name for d in dev_sets], "bleu_signature": signature, "grid": rows,
            "best": {k: best[k] for k in keys}}


def write_decoding(folder: Path, result: dict[str, Any]) -> None:
    """Store the winner as the folder's decoding defaults, and the grid beside it (config.json, atomically)."""
    config = read_config(folder)
    config["decoding"] = {**config.get("decoding", {}), **result["best"]}
    config["tuning"] = {k: result[k] for k in ("dev_sets", "bleu_signature", "grid")}
    atomic_write(folder / CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def format_tuning(result: dict[str, Any]) -> str:
    names = result["dev_sets"]
    lines = [f"{'beam':>4} {'lp':>5} {'rev':>5} {'r2l':>5} " + " ".join(f"{n:>18}" for n in names) + f" {'mean':>6}"]
    for row in result["grid"]:
        lines.append(f"{row['beam_size']:>4} {row['length_penalty']:>5.2f} {row.get('reverse_weight', 0.0):>5.2f} "
                     f"{row.get('right_to_left_weight', 0.0):>5.2f} "
                     + " ".join(f"{row['bleu'][n]:>18.2f}" for n in names) + f" {row['mean_bleu']:>6.2f}")
    best = result["best"]
    lines.append(f"best: beam {best['beam_size']}, length penalty {best['length_penalty']}, reverse weight "
                 f"{best.get('reverse_weight', 0.0)}, right-to-left weight {best.get('right_to_left_weight', 0.0)} "
                 f"({result['bleu_signature']})")
    return "\n".join(lines)
