"""`rnnmt release`: turn a trained run folder into a shipped model folder (fp16 weights) with its card."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from model.checkpoint import load_model_folder, read_config, save_model_folder

CARD_FILES = ("config.json", "model.safetensors")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file the model needs (weights, config, SentencePiece models)."""
    config = read_config(folder)
    names = sorted({*CARD_FILES, *config["tokenizer"].values()})
    return {name: sha256(folder / name) for name in names}


def export_fp16(run: Path, out: Path) -> Path:
    bundle = load_model_folder(run)
    config = read_config(run)
    meta = {k: v for k, v in config.items() if k not in ("format", "version", "model", "tokenizer")}
    files = config["tokenizer"]
    if out.exists():
        shutil.rmtree(out)
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


def write_card(out: Path, card: dict[str, Any]) -> None:
    """README.md (the model card, human-readable) + metrics.json (the same figures for the service)."""
    sums = checksums(out)
    test, val, bench = card["test"], card["val"], card.get("bench") or {}
    lines = [
        f"# {card['title']}", "",
        card["summary"], "",
        "## Data",
        "Multi30k task 1 (Elliott et al. 2016): 29,000 training pairs of Flickr30k image captions; tuned on `val` "
        "(1,014), tested on `test_2016_flickr` (1,000). Nothing of val or test was trained on.", "",
        "## Recipe", f"`{card['command']}`", "", "```yaml", card["recipe"].strip(), "```",
        f"Training: {card['train']}", "",
        "## Scores (sacrebleu, cased, detokenized)",
        "| set | decode | BLEU | chrF |", "|---|---|---|---|",
        f"| val | {val['decode']} | {val['bleu']} | {val['chrf']} |",
        f"| test_2016_flickr | {test['decode']} | **{test['bleu']}** | **{test['chrf']}** |", "",
        f"BLEU signature: `{test['bleu_signature']}`  ", f"chrF signature: `{test['chrf_signature']}`", "",
        *speed_lines(bench),
    ]
    lines += ["", "## Limitations", card["limitations"], "", "## Files (SHA-256)"]
    lines += [f"- `{name}`: `{digest}`" for name, digest in sums.items()]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    metrics = {"test_bleu": test["bleu"], "test_chrf": test["chrf"], "val_bleu": val["bleu"], "val_chrf": val["chrf"],
               "bleu_signature": test["bleu_signature"], "chrf_signature": test["chrf_signature"],
               "decode": test["decode"], "sha256": sums}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


LIMITATIONS = ("Trained only on Multi30k image captions: short, literal, descriptive sentences about people, "
               "animals and scenes. Expect poor output on other domains (news, dialogue, technical text), on long "
               "sentences and on rare names. A single RNN model, no ensembling; it can hallucinate or drop content "
               "like any NMT system, so do not use it where errors matter without human review.")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Export a run as a released model folder with its card.")
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--val", required=True, type=Path, help="rnnmt evaluate --json output on val")
    parser.add_argument("--test", required=True, type=Path, help="rnnmt evaluate --json output on test_2016_flickr")
    parser.add_argument("--bench", type=Path, help="rnnmt bench --json output")
    args = parser.parse_args()
    run_metrics = json.loads((args.run / "metrics.json").read_text())
    val, test = json.loads(args.val.read_text()), json.loads(args.test.read_text())
    src, tgt = read_config(args.run)["source_lang"], read_config(args.run)["target_lang"]
    names = {"en": "English", "de": "German", "fr": "French", "cs": "Czech"}

    def decode(result: dict[str, Any]) -> str:
        d = result["decode"]
        return f"beam {d['beam_size']}, length penalty {d['length_penalty']}"

    export_fp16(args.run, args.out)
    write_card(args.out, {
        "title": f"rnnmt Multi30k {names.get(src, src)} → {names.get(tgt, tgt)}",
        "summary": f"A bidirectional-GRU encoder / GRU decoder with Bahdanau attention, trained with rnnmt on "
                   f"Multi30k {src}→{tgt} on a 2-core CPU. Weights stored as fp16 safetensors.",
        "command": f"rnnmt train --config {args.config} --out {args.run}  (all steps: make release-models)",
        "recipe": args.config.read_text(),
        "train": f"{run_metrics['steps']} steps ({run_metrics['epochs']} full epochs), "
                 f"{run_metrics['train_seconds'] / 60:.0f} min of training compute on 2 shared CPU cores, "
                 f"{run_metrics['train_tgt_tokens_per_s']:.0f} target tokens/s; weights: {run_metrics['weights']}.",
        "val": {**val, "decode": decode(val)},
        "test": {**test, "decode": decode(test)},
        "bench": json.loads(args.bench.read_text()) if args.bench else None,
        "limitations": LIMITATIONS,
    })
    print(f"released {args.out}")


if __name__ == "__main__":
    main()
