"""`rnnmt bench --precision LIST`: every precision this CPU has, side by side in one report."""

from __future__ import annotations

import json
from pathlib import Path

from model.cpu_features import cpu_features
from tests.training.test_cli_errors import assert_user_error, rnnmt


def test_bench_reports_each_precision_against_its_own_limit(tmp_path: Path, tiny_model_dir: Path) -> None:
    corpus = tmp_path / "src.txt"
    corpus.write_text("three one four\nnine eight\none two three four\n" * 4)
    out = tmp_path / "bench.json"
    asked = [p for p in ("fp32", "int8", "bf16") if p in cpu_features().precisions()]
    result = rnnmt("bench", "--model", str(tiny_model_dir), "--src", str(corpus), "--max-sentences", "12",
                   "--threads", "1", "--limit-rounds", "1", "--precision", ",".join(asked), "--json", str(out))
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(out.read_text())
    assert [p["precision"] for p in report["precisions"]] == asked
    kernels = {p["precision"]: p["kernel"] for p in report["precisions"]}
    assert len(set(kernels.values())) == len(asked)  # each precision decoded with its own kernel
    assert all(p["machine_matmul_gflops"] > 0 and p["latency_ms"]["p50"] > 0 for p in report["precisions"])
    assert {(r["precision"], r["search"], r["batch_size"]) for r in report["decode"]} == {
        (p, search, batch) for p in asked for search in ("greedy", "beam5") for batch in (1, 64)}
    assert all(0 < r["limit_fraction"] < 1 for r in report["decode"])
    printed = result.stdout.decode()
    assert all(f"machine {p} matmul" in printed for p in asked)


def test_bench_refuses_a_precision_this_cpu_lacks_in_one_line(tiny_model_dir: Path) -> None:
    result = rnnmt("bench", "--model", str(tiny_model_dir), "--precision", "fp32,fp16")
    assert_user_error(result, "precision must be one of")
    if "bf16" not in cpu_features().precisions():
        assert_user_error(rnnmt("bench", "--model", str(tiny_model_dir), "--precision", "bf16"), "native bf16")
