"""`rnnmt release`: turn a trained run folder into a shipped model folder (fp16 weights) with its card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from model.atomic import atomic_write, staged_folder
from model.checkpoint import is_right_to_left, load_model_folder, read_config, save_model_folder
from model.shortlist import SHORTLIST
from training.download import sha256_of

CARD_FILES = ("config.json", "model.safetensors")


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file the model needs (weights, config, SentencePiece models, the shortlist if any)."""
    config = read_config(folder)
    optional = [SHORTLIST] if (folder / SHORTLIST).is_file() else []
    names = sorted({*CARD_FILES, *config["tokenizer"].values(), *optional})
    return {name: sha256_of(folder / name) for name in names}


def export_fp16(run: Path, out: Path) -> Path:
    bundle = load_model_folder(run)
    config = read_config(run)
    meta = {k: v for k, v in config.items() if k not in ("format", "version", "model", "tokenizer")}
    files = config["tokenizer"]
    save_model_folder(out, bundle.model, meta, run / files["src"], run / files["tgt"], fp16=True)
    return out


def speed_lines(bench: dict[str, Any]) -> list[str]:
    """The card's speed section from `rnnmt bench --json` output."""
    lines = ["## Speed (`rnnmt bench`, 2 CPU threads)"]
    limit = bench.get("machine_matmul_gflops")
    for record in bench.get("decode", []):
        fraction = f" ({record['limit_fraction']:.0%} of this machine's fp32 matmul limit)" if limit else ""
        lines.append(f"- {record['search']} batch {record['batch_size']}: {record['sentences_per_s']} sentences/s, "
                     f"{record['target_tokens_per_s']} target tokens/s{fraction}")
    if bench:
        latency = bench["latency_ms"]
        lines.append(f"- single-sentence latency p50 {latency['p50']} ms, p95 {latency['p95']} ms;"
                     f" peak RSS {bench['peak_rss_mb']} MB; {bench['params']:,} parameters")
    if limit:
        lines.append(f"- this machine's fp32 matmul limit: {limit} GFLOP/s (square matmuls, best of 3)")
    return lines


def shortlist_lines(report: dict[str, Any] | None) -> list[str]:
    """The card's section on the folder's lexical shortlist (`rnnmt shortlist --json`), if it has one."""
    if report is None:
        return []
    held = "; ".join(f"{name} {t['coverage']:.2%} (mean {t['mean_pieces']:,} of {report['vocab_size']:,} pieces)"
                     for name, t in report["testsets"].items())
    return ["## Lexical shortlist",
            f"`{report['file']}` (model/shortlist.py): the {report['frequent']:,} most frequent target pieces and, for "
            f"each source piece, the {report['per_source']} target pieces that co-occur with it most beyond chance "
            f"(Dice), counted on {report['pairs']:,} training pairs ({', '.join(report['corpora'])}). A search on "
            "request (`--shortlist`, `\"shortlist\": true`) scores only the union for its sentences. Share of the "
            f"reference pieces in their sentence's shortlist: {held}.", ""]


def tuning_lines(tuning: dict[str, Any] | None) -> list[str]:
    """How the decoding defaults were chosen (`rnnmt tune`, config.json's `tuning`): the dev-set grid."""
    if not tuning:
        return []
    names = tuning["dev_sets"]
    lines = [f"## Decoding defaults (`rnnmt tune` on {', '.join(names)}; mean BLEU, never a test set)",
             "| beam | length penalty | reverse weight | right-to-left weight | " + " | ".join(names) + " | mean |",
             "|---|---|---|---|" + "---|" * (len(names) + 1)]
    lines += [f"| {r['beam_size']} | {r['length_penalty']} | {r.get('reverse_weight', 0.0)} | "
              f"{r.get('right_to_left_weight', 0.0)} | "
              + " | ".join(str(r["bleu"][n]) for n in names) + f" | {r['mean_bleu']} |" for r in tuning["grid"]]
    return [*lines, ""]


def write_card(out: Path, card: dict[str, Any]) -> None:
    """README.md (the model card, human-readable) + metrics.json (the same figures for the service)."""
    sums = checksums(out)
    test, val, bench = card["test"], card["val"], card.get("bench") or {}
    extra = card.get("extra") or {}  # more evaluation sets: {"ding:dev": result, "ding:test": result}
    lines = [
        f"# {card['title']}", "",
        card["summary"], "",
        "## Data", card.get("data", MULTI30K_DATA), "",
        "## Recipe", f"`{card['command']}`", "", "```yaml", card["recipe"].strip(), "```",
        f"Training: {card['train']}", "",
        "## Scores (sacrebleu, cased, detokenized)",
        "| set | decode | BLEU | chrF |", "|---|---|---|---|",
        f"| Multi30k val | {val['decode']} | {val['bleu']} | {val['chrf']} |",
        f"| Multi30k test_2016_flickr | {test['decode']} | **{test['bleu']}** | **{test['chrf']}** |",
        *(f"| {name} ({result['sentences']} sentences) | {result['decode']} | "
          + (f"**{result['bleu']}** | **{result['chrf']}** |" if name.endswith("test") else
             f"{result['bleu']} | {result['chrf']} |") for name, result in extra.items()), "",
        f"BLEU signature: `{test['bleu_signature']}`  ", f"chrF signature: `{test['chrf_signature']}`", "",
        *tuning_lines(card.get("tuning")),
        *shortlist_lines(card.get("shortlist")),
        *speed_lines(bench),
    ]
    lines += ["", "## Limitations", card["limitations"], "", "## Files (SHA-256)"]
    lines += [f"- `{name}`: `{digest}`" for name, digest in sums.items()]
    atomic_write(out / "README.md", "\n".join(lines) + "\n")
    metrics = {"test_bleu": test["bleu"], "test_chrf": test["chrf"], "val_bleu": val["bleu"], "val_chrf": val["chrf"],
               "bleu_signature": test["bleu_signature"], "chrf_signature": test["chrf_signature"],
               "decode": test["decode"], "sha256": sums,
               **{f"{name.replace(':', '_')}_{key}": result[key] for name, result in extra.items()
                  for key in ("bleu", "chrf")}}
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


MULTI30K_DATA = ("Multi30k task 1 (Elliott et al. 2016): 29,000 training pairs of Flickr30k image captions; tuned on "
                 "`val` (1,014), tested on `test_2016_flickr` (1,000). Nothing of val or test was trained on.")
DING_DATA = (
    "Multi30k task 1 (Elliott et al. 2016; 29,000 Flickr30k caption pairs) and the Ding German-English dictionary "
    "(TU Chemnitz, Frank Richter; GPL-2+; Debian package `trans-de-en`, `/usr/share/trans/de-en`, 2023-01-30): its "
    "train split only (training/ding.py: a line belongs to test when the first byte of its SHA-1 is below 13, to dev "
    "when 13-25), mixed by weight as the recipe below says: ~19k example sentences, ~30k phrases of four or more "
    "words, and samples of its short phrases and single words. Checkpoints chosen on Multi30k `val` + the Ding dev "
    "split together; tested on `test_2016_flickr` and the Ding test split (1,006 example sentences). Nothing of a "
    "dev or test line was trained on, nor a train pair repeating a dev or test sentence (48 in this file). "
    "The weights are trained on GPL-2+ data: redistribute them under terms "
    "compatible with it.")
GETTEXT_DATA = (
    " Later stages add, at half weight, the software messages of the gettext catalogs installed on the training "
    "machine (`--corpus gettext`, training/catalogs.py: `/usr/share/locale/*/LC_MESSAGES/*.mo` of ~100 Debian "
    "packages, one-line messages without placeholders), each under its package's license (mostly GPL or LGPL).")
LIMITATIONS = ("Trained only on Multi30k image captions: short, literal, descriptive sentences about people, "
               "animals and scenes. Expect poor output on other domains (news, dialogue, technical text), on long "
               "sentences and on rare names. A single RNN model, no ensembling; it can hallucinate or drop content "
               "like any NMT system, so do not use it where errors matter without human review.")


EVERYDAY_LIMITATIONS = (
    "Knows image captions and the everyday sentences of a dictionary's examples, nothing more: ~19k example "
    "sentences and ~30k phrases is very little everyday data (production systems train on tens of millions of "
    "pairs), so expect literal, sometimes wrong output on dialogue, news, technical or long text, and unknown names "
    "garbled. Users with more data should train on it: `rnnmt prepare --corpus their.tmx --corpus "
    "multi30k:1 ...` (README, 'Train on your own corpus'), e.g. OPUS Europarl/News-Commentary/Tatoeba with "
    "`--download`. A single RNN model, no ensembling; it can hallucinate or drop content like any NMT system, so do "
    "not use it where errors matter without human review.")


def uses_gettext(config: Path) -> bool:
    corpora = (yaml.safe_load(config.read_text()).get("data") or {}).get("corpora") or []
    return any(str(spec).split(":")[0] == "gettext" for spec in corpora)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Export a run as a released model folder with its card.")
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path, action="append",
                        help="the recipe; repeat it for a run trained in stages, first stage first")
    parser.add_argument("--earlier-run", type=Path, action="append", default=[],
                        help="the run folder of each earlier stage (train.init_from), first first")
    parser.add_argument("--val", required=True, type=Path, help="rnnmt evaluate --json output on val")
    parser.add_argument("--test", required=True, type=Path, help="rnnmt evaluate --json output on test_2016_flickr")
    parser.add_argument("--bench", type=Path, help="rnnmt bench --json output")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=EVAL.json",
                        help="another evaluation set for the card, e.g. ding:test=runs/x/eval-ding-test.json")
    parser.add_argument("--title", help="the card's title (default: rnnmt Multi30k SRC → TGT)")
    parser.add_argument("--shortlist", type=Path, help="`rnnmt shortlist --model RUN --json` output: ships the run's "
                                                      "shortlist.safetensors, described on the card")
    args = parser.parse_args()
    # The stages are the runs that trained (metrics.json); --run may instead be their average (rnnmt average).
    runs = [run for run in dict.fromkeys([*args.earlier_run, args.run]) if (run / "metrics.json").is_file()]
    if len(args.config) != len(runs):
        parser.error("give one --config per training stage, first stage first")
    stages = [json.loads((run / "metrics.json").read_text()) for run in runs]
    averaged = read_config(args.run).get("averaged_from")
    val, test = json.loads(args.val.read_text()), json.loads(args.test.read_text())
    src, tgt = read_config(args.run)["source_lang"], read_config(args.run)["target_lang"]
    names = {"en": "English", "de": "German", "fr": "French", "cs": "Czech"}

    def decode(result: dict[str, Any]) -> str:
        d = result["decode"]
        weights = [d.get("reverse_weight", 0.0), d.get("right_to_left_weight", 0.0)]
        named = result.get("reranked_with") or []
        named = [named] if isinstance(named, str) else named  # cards of an earlier format named one model
        weights = [w for w in weights if w > 0]
        reranked = (", reranked by " + " and ".join(f"{name} (weight {w})" for name, w in zip(named, weights))
                    if named else "")
        return f"beam {d['beam_size']}, length penalty {d['length_penalty']}{reranked}"

    extra = {name: json.loads(Path(path).read_text()) for name, path in (e.split("=", 1) for e in args.extra)}
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
                    + (GETTEXT_DATA if any(uses_gettext(config) for config in args.config) else ""),
            "extra": {name: {**result, "decode": decode(result)} for name, result in extra.items()},
            "command": "; ".join(f"rnnmt train --config {config} --out {run}"
                                 for config, run in zip(args.config, runs, strict=True))
                       + (f"; rnnmt average --out {args.run} {' '.join(averaged)}" if averaged else "")
                       + "  (all steps: make release-models)",
            "recipe": "\n".join(config.read_text() for config in args.config),
            "train": "; ".join(
                (f"stage {i + 1}: " if len(stages) > 1 else "")
                + f"{m['steps']} steps ({m['epochs']} full epochs), {m['train_seconds'] / 60:.0f} min of training "
                  f"compute on 2 shared CPU cores, {m['train_tgt_tokens_per_s']:.0f} target tokens/s; weights: "
                  f"{m['weights']}" for i, m in enumerate(stages))
                     + (f"; released weights: the average of {' and '.join(averaged)} (`rnnmt average`)"
                        if averaged else "") + ".",
            "tuning": read_config(args.run).get("tuning"),
            "val": {**val, "decode": decode(val)},
            "test": {**test, "decode": decode(test)},
            "bench": json.loads(args.bench.read_text()) if args.bench else None,
            "limitations": EVERYDAY_LIMITATIONS if everyday else LIMITATIONS,
            "shortlist": json.loads(args.shortlist.read_text()) if args.shortlist else None,
        })
    print(f"released {args.out}")


if __name__ == "__main__":
    main()
