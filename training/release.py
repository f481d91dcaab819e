"""`rnnmt release`: turn a trained run folder into a shipped model folder (fp16 weights) with its card
(training/card.py), or refresh a released folder's card after a retune."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from model.atomic import staged_folder
from model.checkpoint import is_right_to_left, load_model_folder, read_config, save_model_folder
from model.shortlist import SHORTLIST
from training.card import (
    DING_DATA,
    EVERYDAY_LIMITATIONS,
    FORTUNES_DATA,
    GETTEXT_DATA,
    LIMITATIONS,
    MULTI30K_DATA,
    decode_text,
    earlier_stages,
    refresh_card,
    uses_fortunes,
    uses_gettext,
    write_card,
)


def export_fp16(run: Path, out: Path) -> Path:
    bundle = load_model_folder(run)
    config = read_config(run)
    meta = {k: v for k, v in config.items() if k not in ("format", "version", "model", "tokenizer")}
    files = config["tokenizer"]
    save_model_folder(out, bundle.model, meta, run / files["src"], run / files["tgt"], fp16=True)
    return out


def read_evaluation(parser: argparse.ArgumentParser, path: str | Path) -> dict[str, Any]:
    """An `rnnmt evaluate --json` report, its decoding settings written out for the card; a one-line error if not."""
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        return {**result, "decode": decode_text(result)}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"{path} is not a readable `rnnmt evaluate --json` report ({exc.__class__.__name__}: {exc})")


def main() -> None:

    parser = argparse.ArgumentParser(description="Export a run as a released model folder with its card, or refresh "
                                                 "a released folder's scores after `rnnmt tune` (--refresh).")
    parser.add_argument("--run", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--config", type=Path, action="append", default=[],
                        help="the recipe; repeat it for a run trained in stages, first stage first")
    parser.add_argument("--refresh", type=Path, metavar="FOLDER",
                        help="a released folder retuned in place: rewrite its card's scores, decoding-defaults table "
                             "and checksums (and metrics.json) from --val, --test and --extra; nothing else changes")
    parser.add_argument("--earlier-run", type=Path, action="append", default=[],
                        help="the run folder of each earlier stage (train.init_from), first first")
    parser.add_argument("--val", required=True, type=Path, help="rnnmt evaluate --json output on val")
    parser.add_argument("--test", required=True, type=Path, help="rnnmt evaluate --json output on test_2016_flickr")
    parser.add_argument("--bench", type=Path, help="rnnmt bench --json output")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=EVAL.json",
                        help="another evaluation set for the card, e.g. ding:test=runs/x/eval-ding-test.json")
    parser.add_argument("--earlier-card", type=Path, help="the card of the released model this run started from "
                        "(train.init_from): its recipe and training head this card's, as earlier stages")
    parser.add_argument("--title", help="the card's title (default: rnnmt Multi30k SRC → TGT)")
    parser.add_argument("--shortlist", type=Path, help="`rnnmt shortlist --model RUN --json` output: ships the run's "
                                                      "shortlist.safetensors, described on the card")
    args = parser.parse_args()
    if any("=" not in e for e in args.extra):
        parser.error("--extra takes NAME=EVAL.json, e.g. ding:test=runs/x/eval-ding-test.json")
    for card in (args.earlier_card, args.refresh and args.refresh / "README.md"):
        if card and not card.is_file():
            parser.error(f"no model card at {card}")
    val, test = read_evaluation(parser, args.val), read_evaluation(parser, args.test)
    extra = {name: read_evaluation(parser, path) for name, path in (e.split("=", 1) for e in args.extra)}
    if args.refresh:
        refresh_card(args.refresh, val, test, extra)
        print(f"refreshed {args.refresh}")
        return
    if not (args.run and args.out and args.config):
        parser.error("--run, --out and --config are required (or --refresh FOLDER)")
    # The stages are the runs that trained (metrics.json); --run may instead be their average (rnnmt average).
    runs = [run for run in dict.fromkeys([*args.earlier_run, args.run]) if (run / "metrics.json").is_file()]
    if len(args.config) != len(runs):
        parser.error("give one --config per training stage, first stage first")
    stages = [json.loads((run / "metrics.json").read_text()) for run in runs]
    averaged = read_config(args.run).get("averaged_from")
    src, tgt = read_config(args.run)["source_lang"], read_config(args.run)["target_lang"]
    names = {"en": "English", "de": "German", "fr": "French", "cs": "Czech"}
    command = "; ".join(f"rnnmt train --config {config} --out {run}"
                        for config, run in zip(args.config, runs, strict=True))
    recipe = "\n".join(config.read_text() for config in args.config)
    train = "; ".join(
        (f"stage {i + 1}: " if len(stages) > 1 else "")
        + f"{m['steps']} steps ({m['epochs']} full epochs), {m['train_seconds'] / 60:.0f} min of training "
          f"compute on 2 shared CPU cores, {m['train_tgt_tokens_per_s']:.0f} target tokens/s; weights: "
          f"{m['weights']}" for i, m in enumerate(stages))
    if args.earlier_card:  # this run continued a released model: its stages come first
        earlier_command, earlier_recipe, earlier_train = earlier_stages(args.earlier_card)
        command, recipe = f"{earlier_command}; {command}", f"{earlier_recipe}\n\n{recipe}"
        train = f"{earlier_train}; then, from those released weights: {train}"
    everyday = any(name.startswith("ding:") for name in extra)
    with staged_folder(args.out) as staging:  # published whole, card included: never weights without their card
        export_fp16(args.run, staging)
        if args.shortlist:
            shutil.copyfile(args.run / SHORTLIST, staging / SHORTLIST)  # staged: published with the folder
        write_card(staging, {
            "title": args.title or f"rnnmt Multi30k {names.get(src, src)} → {names.get(tgt, tgt)}",
            "summary": f"A bidirectional-GRU encoder / GRU decoder with Bahdanau attention, trained with rnnmt on "
                       f"{'Multi30k + the Ding dictionary' if everyday else 'Multi30k'} {src}→{tgt} on a 2-core CPU. "
                       "Weights stored as fp16 safetensors."
                       + (" It writes each translation right to left (model.right_to_left): the service does not "
                          f"serve it as a translator, it reranks the {src}→{tgt} model's beams (model/rerank.py)."
                          if is_right_to_left(read_config(args.run)) else ""),
            "data": (DING_DATA if everyday else MULTI30K_DATA)
                    + (GETTEXT_DATA if any(uses_gettext(config) for config in args.config) else "")
                    + (FORTUNES_DATA if any(uses_fortunes(config) for config in args.config) else ""),
            "extra": extra,
            "command": command + (f"; rnnmt average --out {args.run} {' '.join(averaged)}" if averaged else "")
                       + "  (all steps: make release-models)",
            "recipe": recipe,
            "train": train + (f"; released weights: the average of {' and '.join(averaged)} (`rnnmt average`)"
                              if averaged else "") + ".",
            "tuning": read_config(args.run).get("tuning"),
            "val": val,
            "test": test,
            "bench": json.loads(args.bench.read_text()) if args.bench else None,
            "limitations": EVERYDAY_LIMITATIONS if everyday else LIMITATIONS,
            "shortlist": json.loads(args.shortlist.read_text()) if args.shortlist else None,
        })
    print(f"released {args.out}")


if __name__ == "__main__":
    main()
