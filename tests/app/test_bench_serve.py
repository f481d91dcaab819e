"""`rnnmt bench-serve`: its statistics, its report, and its load generator against the session's server.

(A whole run starts two more servers; `rnnmt bench-serve` is run by hand, see the README. The fairness run is
tested once, tiny, on its own server: it needs two API keys.)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from app.bench_serve import bench_fairness, drive, format_fairness, format_table, percentile, rss_mb
from app.cli import build_parser


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0


def test_load_generator_against_the_server(server_url: str) -> None:
    result = asyncio.run(drive(server_url, ["three one four", "five six", "seven"], "en", "de", clients=4,
                               requests=3, beam_size=2, mode="batching"))
    assert result.requests == 12 and result.errors == 0 and result.requests_per_s > 0
    assert result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.mean_batch_sentences is None or result.mean_batch_sentences >= 1.0  # cache hits decode nothing
    report = {"pair": "en-de", "clients": 4, "requests_per_client": 3, "beam_size": 2,
              "results": [vars(result), {**vars(result), "mode": "no batching"}], "speedup": 1.0}
    table = format_table(report)
    assert "batching" in table and "no batching" in table and "speedup from micro-batching: 1.0x" in table
    assert "RSS MB ready/end/peak" in table and "-/-/-" in table  # not measured here: the server is not a child
    measured = format_table({**report, "results": [{**vars(result), "rss_ready_mb": 300.0, "rss_end_mb": 380.4,
                                                    "rss_peak_mb": 391.6}]})
    assert "300/380/392" in measured


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_rss_is_read_from_proc() -> None:
    now, peak = rss_mb(os.getpid()), rss_mb(os.getpid(), "VmHWM")
    assert now is not None and peak is not None and 0 < now <= peak
    assert rss_mb(2**22 + 1) is None  # no such process


def test_fairness_run(served_models_dir: Path) -> None:
    report = bench_fairness(served_models_dir, beam_size=1, single_requests=5, flood_sentences=60, flood_batch=8,
                            flood_connections=3, sentences=["three one four", "five six", "seven"],
                            batching_env={"RNNMT_DEVICE": "cpu"}, threads=1)
    assert report["flood_answered"] == 60 and report["flood_503s"] >= 0  # every flood sentence answered
    for phase in ("idle", "flood"):
        stats = report[phase]
        assert stats["requests"] >= 5
        assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert report["p95_ratio"] > 0 and report["flood_s"] > 0 and report["flood_sentences_per_s"] > 0
    assert report["mean_batch_sentences"] >= 1.0
    table = format_fairness(report)
    assert "under flood" in table and "p95 under flood / idle" in table and "60/60 sentences" in table


def test_cli_options() -> None:
    args = build_parser().parse_args(["bench-serve", "--model-dir", "m", "--clients", "8", "--json", "r.json"])
    assert (args.models_dir, args.clients, args.requests, args.json) == ("m", 8, 20, "r.json")
    assert not args.fairness
    args = build_parser().parse_args(["bench-serve", "--model-dir", "m", "--fairness", "--flood-sentences", "60"])
    assert (args.fairness, args.single_requests, args.flood_sentences, args.flood_batch, args.flood_connections) \
        == (True, 40, 60, 8, 8)
    args = build_parser().parse_args(["serve", "--port", "9000", "--models-dir", "models", "--workers", "2"])
    assert (args.host, args.port, args.workers, args.models_dir) == ("127.0.0.1", 9000, 2, "models")
