"""A released model's card: README.md (for people) and metrics.json (the same figures for the service), written from
the reports of other commands (`rnnmt evaluate/bench/shortlist --json`, `rnnmt tune`'s grid in config.json), refreshed
after a retune, and read back for the stages a later release continues from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from model.atomic import atomic_write
from model.checkpoint import read_config
from model.shortlist import SHORTLIST
from training.download import sha256_of

CARD_FILES = ("config.json", "model.safetensors")


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file the model needs (weights, config, SentencePiece models, the shortlist if any)."""
    config = read_config(folder)
    optional = [SHORTLIST] if (folder / SHORTLIST).is_file() else []
    names = sorted({*CARD_FILES, *config["tokenizer"].values(), *optional})
    return {name: sha256_of(folder / name) for name in names}


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


def scores_lines(val: dict[str, Any], test: dict[str, Any], extra: dict[str, dict[str, Any]]) -> list[str]:
    """The card's scores table: val, test and the other evaluation sets (`rnnmt evaluate --json` results whose
    `decode` is already the text `decode_text` writes), with the signatures."""
    return [
        "## Scores (sacrebleu, cased, detokenized)",
        "| set | decode | BLEU | chrF |", "|---|---|---|---|",
        f"| Multi30k val | {val['decode']} | {val['bleu']} | {val['chrf']} |",
        f"| Multi30k test_2016_flickr | {test['decode']} | **{test['bleu']}** | **{test['chrf']}** |",
        *(f"| {name} ({result['sentences']} sentences) | {result['decode']} | "
          + (f"**{result['bleu']}** | **{result['chrf']}** |" if name.endswith("test") else
             f"{result['bleu']} | {result['chrf']} |") for name, result in extra.items()), "",
        f"BLEU signature: `{test['bleu_signature']}`  ", f"chrF signature: `{test['chrf_signature']}`", ""]


def files_lines(sums: dict[str, str]) -> list[str]:
    return ["## Files (SHA-256)", *(f"- `{name}`: `{digest}`" for name, digest in sums.items())]


def write_metrics(out: Path, val: dict[str, Any], test: dict[str, Any], extra: dict[str, dict[str, Any]],
                  sums: dict[str, str]) -> None:
    """metrics.json: the card's figures for the service (/languages) and the tests of the released folders."""
    metrics = {"test_bleu": test["bleu"], "test_chrf": test["chrf"], "val_bleu": val["bleu"], "val_chrf": val["chrf"],
               "bleu_signature": test["bleu_signature"], "chrf_signature": test["chrf_signature"],
               "decode": test["decode"], "sha256": sums,
               **{f"{name.replace(':', '_')}_{key}": result[key] for name, result in extra.items()
                  for key in ("bleu", "chrf")}}
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


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
        *scores_lines(val, test, extra),
        *tuning_lines(card.get("tuning")),
        *shortlist_lines(card.get("shortlist")),
        *speed_lines(bench),
    ]
    lines += ["", "## Limitations", card["limitations"], "", *files_lines(sums)]
    atomic_write(out / "README.md", "\n".join(lines) + "\n")
    write_metrics(out, val, test, extra, sums)


def card_sections(text: str) -> list[list[str]]:
    """A card's lines cut before every `## ` heading: [title and summary, Data, Recipe, Scores, ...]."""
    sections: list[list[str]] = [[]]
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("## "):
            sections.append([])
        sections[-1].append(line)
    return sections


def refresh_card(folder: Path, val: dict[str, Any], test: dict[str, Any], extra: dict[str, dict[str, Any]]) -> None:
    """A released folder whose decoding defaults were tuned anew (`rnnmt tune` rewrote its config.json): the card's
    scores, its decoding-defaults table and its checksums rewritten from new evaluations, metrics.json with them;
    the rest of the card (data, recipe, training, shortlist, speed, limitations) kept as written at release."""
    sums = checksums(folder)
    tuning = tuning_lines(read_config(folder).get("tuning"))
    rebuilt: list[str] = []
    for section in card_sections((folder / "README.md").read_text(encoding="utf-8")):
        heading = section[0]
        if heading.startswith("## Scores"):
            rebuilt += scores_lines(val, test, extra) + tuning
        elif heading.startswith("## Files"):
            rebuilt += files_lines(sums)
        elif not heading.startswith("## Decoding defaults"):  # replaced together with the scores
            rebuilt += section
    atomic_write(folder / "README.md", "\n".join(rebuilt) + "\n")
    write_metrics(folder, val, test, extra, sums)


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
FORTUNES_DATA = (
    " The last stage adds back-translated everyday English (scripts/fortunes-bt.sh): ~13.6k sentences of Debian's "
    "fortune cookies (package `fortunes`, BSD-style and public-domain texts), none a side of a Ding dev or test "
    "sentence, each under a German source written by the released everyday-en-de (int8, beam 5).")
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


def decode_text(result: dict[str, Any]) -> str:
    """How an evaluation decoded, for the card: 'beam 8, length penalty 0.6, reranked by X (weight 2.0) and ...'."""
    d = result["decode"]
    weights = [d.get("reverse_weight", 0.0), d.get("right_to_left_weight", 0.0)]
    named = result.get("reranked_with") or []
    named = [named] if isinstance(named, str) else named  # cards of an earlier format named one model
    weights = [w for w in weights if w > 0]
    reranked = (", reranked by " + " and ".join(f"{name} (weight {w})" for name, w in zip(named, weights))
                if named else "")
    return f"beam {d['beam_size']}, length penalty {d['length_penalty']}{reranked}"


def corpora_of(config: Path) -> list[str]:
    """The corpus names and paths of a recipe's training mix, weights dropped."""
    corpora = (yaml.safe_load(config.read_text()).get("data") or {}).get("corpora") or []
    return [str(spec).split(":")[0] for spec in corpora]


def uses_gettext(config: Path) -> bool:
    return "gettext" in corpora_of(config)


def uses_fortunes(config: Path) -> bool:
    return any(Path(corpus).name == "fortunes-bt.tsv" for corpus in corpora_of(config))


def earlier_stages(card: Path) -> tuple[str, str, str]:
    """The recipe command, the recipe YAML and the training line of a released model's card: the stages a run
    continued from when it started from that released folder (train.init_from), carried onto the new card."""
    recipe = next((section for section in card_sections(card.read_text(encoding="utf-8"))
                   if section[0] == "## Recipe"), None)
    if recipe is None:
        raise SystemExit(f"{card} has no '## Recipe' section to carry over")
    command = recipe[1].strip("`").removesuffix("  (all steps: make release-models)")
    start, end = recipe.index("```yaml"), recipe.index("```", recipe.index("```yaml") + 1)
    training = next(line for line in recipe if line.startswith("Training: "))
    return command, "\n".join(recipe[start + 1: end]), training.removeprefix("Training: ").removesuffix(".")
