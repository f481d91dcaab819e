"""The model card's speed section, as `make release-models` writes it from `rnnmt bench --json`."""

from __future__ import annotations

from training.release import speed_lines


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
