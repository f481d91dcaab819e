"""`rnnmt bench-serve`: its statistics, its report, and its load generator against the session's server.

(A whole run starts two more servers; `rnnmt bench-serve` is run by hand, see the README.)
"""

from __future__ import annotations

import asyncio

from app.bench_serve import drive, format_table, percentile
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


def test_cli_options() -> None:
    args = build_parser().parse_args(["bench-serve", "--model-dir", "m", "--clients", "8", "--json", "r.json"])
    assert (args.models_dir, args.clients, args.requests, args.json) == ("m", 8, 20, "r.json")
    args = build_parser().parse_args(["serve", "--port", "9000", "--models-dir", "models", "--workers", "2"])
    assert (args.host, args.port, args.workers, args.models_dir) == ("127.0.0.1", 9000, 2, "models")
