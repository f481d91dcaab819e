"""The model card's sections that `make release-models` writes from other commands' reports: speed (`rnnmt bench
--json`), the lexical shortlist (`rnnmt shortlist --json`), the data (the recipe's corpora)."""

from __future__ import annotations

from pathlib import Path

from training.release import shortlist_lines, speed_lines, uses_gettext


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
