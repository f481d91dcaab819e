"""`rnnmt bench-serve --soak`, a few seconds against the tiny model: the report's shape and the status codes
(the figures themselves come from a real 10-minute run on a quiet machine, not from here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.bench_soak import EXPECTED_STATUSES, Outcome, summarize
from app.cli import build_parser, main


def test_summary_of_outcomes() -> None:
    outcomes = [Outcome(0.0, 0.5, "200"), Outcome(0.1, 3.0, "200"), Outcome(0.2, 2.0, "504", "deadline_exceeded"),
                Outcome(1.0, 0.01, "503", "overloaded", 4.0), Outcome(1.5, 0.01, "503", "queue_full", 2.0),
                Outcome(1.6, 3.4, "200")]
    report = summarize(outcomes, load_end=2.0, deadline_s=2.0)
    assert report["status_counts"] == {"200": 3, "503": 2, "504": 1} and report["only_expected_statuses"]
    assert (report["accepted"], report["rejected_at_admission"], report["late_504"]) == (4, 2, 1)
    assert report["rejected_codes"] == {"overloaded": 1, "queue_full": 1}
    assert report["accepted_within_deadline"] == 0.25  # 0.5 s in time; 3.0 s and 3.4 s late (200 after deadline)
    # the last 503 was answered at 1.51 s; the requests accepted before it had all been answered at 3.1 s (the
    # one sent after it, answered at 5.0 s, was behind it): a client obeying Retry-After waited for 1.59 s
    assert report["drain"] == {"last_retry_after_s": 2.0, "real_drain_s": 1.59, "ratio": 1.26,
                               "queue_empty_after_load_s": 3.0}
    # every 503: 4 s against 3.1 - 1.01 = 2.09 s (1.91), 2 s against 1.59 s (1.26)
    assert report["retry_after_vs_drain"] == {"count": 2, "p10": 1.26, "p50": 1.26, "p90": 1.91, "within_2x": 1.0}
    assert not summarize([Outcome(0.0, 1.0, "connection_error")], 1.0, 2.0)["only_expected_statuses"]


def test_soak_options() -> None:
    args = build_parser().parse_args(["bench-serve", "--model-dir", "m", "--soak", "10", "--load", "2x",
                                      "--json-out", "soak.json"])
    assert (args.soak, args.load, args.deadline_s, args.capacity_s, args.json) == (10.0, 2.0, 10.0, 20.0, "soak.json")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench-serve", "--model-dir", "m", "--soak", "1", "--load", "0x"])


def test_soak_run(served_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("three one four\nfive six\nseven\nnine two\n", encoding="utf-8")
    out = tmp_path / "soak.json"
    code = main(["bench-serve", "--models-dir", str(served_models_dir), "--soak", "0.05", "--load", "2x",
                 "--capacity-s", "1", "--deadline-s", "2", "--clients", "2", "--beam-size", "1", "--threads", "1",
                 "--sentences", str(sentences), "--json-out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"capacity_requests_per_s", "offered_requests_per_s", "status_counts", "only_expected_statuses",
            "accepted", "accepted_within_deadline", "rejected_at_admission", "rejected_codes", "late_504", "drain",
            "retry_after_vs_drain", "latency_200", "latency_503", "rss_mb", "health"} <= set(report)
    assert report["requests"] > 0 and set(report["status_counts"]) <= EXPECTED_STATUSES
    assert report["only_expected_statuses"] and report["status_counts"].get("200", 0) > 0
    assert report["capacity_requests_per_s"] > 0 and report["rss_mb"]["warm"] and report["rss_mb"]["end"]
    assert report["health"]["count"] > 0 and report["health"]["failures"] == 0
    table = capsys.readouterr().out
    assert "only 200/503/429/504" in table and "/health p50 / p99 / max ms" in table
    assert "Retry-After / drain, during load" in table
