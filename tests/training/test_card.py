"""The model card (training/card.py): the sections `make release-models` writes from other commands' reports (speed
from `rnnmt bench --json`, the lexical shortlist from `rnnmt shortlist --json`, the data from the recipe's corpora), a
released card refreshed after a retune (`--refresh`), and the stages a later release carries over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.checkpoint import FORMAT
from training.card import (
    checksums,
    earlier_stages,
    refresh_card,
    shortlist_lines,
    speed_lines,
    uses_gettext,
    write_card,
)


def test_speed_lines_give_the_fraction_of_the_matmul_limit() -> None:
    bench = {"machine_matmul_gflops": 150.0, "params": 5922560, "peak_rss_mb": 700.5,
             "latency_ms": {"p50": 50.1, "p95": 90.2, "beam_size": 5},
             "decode": [{"search": "greedy", "batch_size": 64, "sentences_per_s": 400.5,
                         "target_tokens_per_s": 6000.2, "limit_fraction": 0.432}]}
    assert speed_lines(bench) == [
        "## Speed (`rnnmt bench`, 2 CPU threads)",
        "- greedy batch 64: 400.5 sentences/s, 6000.2 target tokens/s (43% of this machine's fp32 matmul limit)",
        "- single-sentence latency p50 50.1 ms, p95 90.2 ms; peak RSS 700.5 MB; 5,922,560 parameters",
        "- this machine's fp32 matmul limit: 150.0 GFLOP/s (square matmuls, best of 3)",
    ]
    assert speed_lines({}) == ["## Speed (`rnnmt bench`, 2 CPU threads)"]


def test_the_card_names_the_gettext_data_only_for_recipes_that_train_on_it(tmp_path: Path) -> None:
    with_it, without = tmp_path / "a.yaml", tmp_path / "b.yaml"
    with_it.write_text("data:\n  corpora: [multi30k:3, 'gettext:0.5']\n")
    without.write_text("# a comment naming gettext\ndata:\n  corpora: [multi30k, ding-sentences:3]\n")
    assert uses_gettext(with_it) and not uses_gettext(without)
    assert uses_gettext(Path(__file__).resolve().parents[2] / "configs" / "everyday-de-en-continue.yaml")


def test_the_shortlist_section_reports_sizes_corpora_and_coverage() -> None:
    report = {"file": "shortlist.safetensors", "frequent": 1000, "per_source": 50, "pairs": 664586,
              "corpora": ["multi30k:3", "ding-sentences:3"], "vocab_size": 10000,
              "testsets": {"multi30k:val": {"coverage": 0.9911, "mean_pieces": 1524}}}
    section = "\n".join(shortlist_lines(report))
    assert section.startswith("## Lexical shortlist\n`shortlist.safetensors`")
    for shown in ("1,000 most frequent", "the 50 target pieces", "664,586 training pairs",
                  "multi30k:3, ding-sentences:3", "multi30k:val 99.11% (mean 1,524 of 10,000 pieces)"):
        assert shown in section
    assert shortlist_lines(None) == []  # a folder without one: no section


def _model_folder(tmp_path: Path) -> Path:
    """A folder with what a card's checksums read: config.json, weights, a SentencePiece model (not real ones)."""
    folder = tmp_path / "model"
    folder.mkdir()
    config = {"format": FORMAT, "model": {}, "tokenizer": {"src": "spm.model", "tgt": "spm.model"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "spm.model").write_bytes(b"pieces")
    return folder


def _result(bleu: float, beam: int) -> dict:
    return {"bleu": bleu, "chrf": bleu + 20, "sentences": 1000, "decode": f"beam {beam}, length penalty 0.6",
            "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
            "chrf_signature": "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"}


def test_refresh_rewrites_the_scores_tuning_and_checksums_and_keeps_the_rest(tmp_path: Path) -> None:
    """A released folder retuned in place (`rnnmt tune` rewrote config.json): `--refresh` puts the new evaluations
    and the new grid on its card and in metrics.json; the data, recipe and speed sections stay as released."""
    folder = _model_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    write_card(folder, {"title": "t", "summary": "s", "data": "the data", "command": "rnnmt train", "recipe": "a: 1",
                        "train": "an hour", "val": _result(40.0, 8), "test": _result(39.0, 8),
                        "extra": {"ding:test": _result(11.7, 8)}, "bench": {}, "limitations": "few"})
    grid = [{"beam_size": beam, "length_penalty": 0.6, "bleu": {"multi30k:val": 40.0 + beam / 100}, "mean_bleu": 40.0}
            for beam in (8, 16)]
    config["tuning"] = {"dev_sets": ["multi30k:val"], "grid": grid}
    (folder / "config.json").write_text(json.dumps(config))

    refresh_card(folder, _result(40.5, 16), _result(39.4, 16), {"ding:test": _result(12.1, 16)})
    card = (folder / "README.md").read_text()
    assert "| Multi30k test_2016_flickr | beam 16, length penalty 0.6 | **39.4** |" in card
    assert "| ding:test (1000 sentences) | beam 16, length penalty 0.6 | **12.1** |" in card
    assert "beam 8" not in card.split("## Decoding defaults")[0]  # the old scores are gone
    assert "| 16 | 0.6 | 0.0 | 0.0 | 40.16 | 40.0 |" in card  # the grid, under the scores
    assert card.index("## Scores") < card.index("## Decoding defaults") < card.index("## Speed")
    for kept in ("## Data\nthe data", "```yaml\na: 1\n```", "Training: an hour", "## Limitations\nfew"):
        assert kept in card
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (metrics["test_bleu"], metrics["ding_test_bleu"]) == (39.4, 12.1)
    assert metrics["sha256"]["config.json"] == checksums(folder)["config.json"]
    assert f"`{metrics['sha256']['config.json']}`" in card  # the card's checksum is the retuned config's
    assert card.count("## Files (SHA-256)") == 1 and card.count("## Scores") == 1



def test_a_run_continued_from_a_released_model_carries_its_stages(tmp_path: Path) -> None:
    """`--earlier-card`: the released card's recipe command, YAML and training line head the new card's."""
    folder = _model_folder(tmp_path)
    write_card(folder, {"title": "t", "summary": "s", "recipe": "data:\n  pair: de-en",
                        "command": "rnnmt train --config a.yaml --out runs/a; rnnmt average --out runs/x runs/a"
                                   "  (all steps: make release-models)",
                        "train": "stage 1: 10 steps; released weights: the average of runs/a",
                        "val": _result(40.0, 8), "test": _result(39.0, 8), "limitations": "few"})
    command, recipe, training = earlier_stages(folder / "README.md")
    assert command == "rnnmt train --config a.yaml --out runs/a; rnnmt average --out runs/x runs/a"
    assert recipe == "data:\n  pair: de-en"
    assert training == "stage 1: 10 steps; released weights: the average of runs/a"
    (folder / "README.md").write_text("# a card without a recipe\n")
    with pytest.raises(SystemExit, match="no '## Recipe' section"):
        earlier_stages(folder / "README.md")


def test_release_cli_refuses_a_missing_card_or_report_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from training import release

    folder = _model_folder(tmp_path)  # no README.md: nothing to refresh
    report = tmp_path / "val.json"
    report.write_text(json.dumps(_result(40.0, 8)))
    cases = {("--refresh", str(folder), "--val", str(report), "--test", str(report)): "no model card at",
             ("--refresh", str(tmp_path), "--val", str(tmp_path / "gone.json"), "--test", str(report)):
                 "gone.json is not a readable `rnnmt evaluate --json` report",
             ("--refresh", str(tmp_path), "--val", str(report), "--test", str(report), "--extra", "ding"):
                 "--extra takes NAME=EVAL.json"}
    (tmp_path / "README.md").write_text("# a card\n")
    for argv, message in cases.items():
        monkeypatch.setattr("sys.argv", ["release.py", *argv])
        with pytest.raises(SystemExit) as exit_info:
            release.main()
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
