"""`rnnmt bench-serve --soak MINUTES --load 2x`: the real server under open-loop overload, for minutes.

One `rnnmt serve` subprocess (the cache off, so every request is decoded; the request deadline given). First its
capacity: closed-loop clients sending one-sentence requests back to back for `capacity_s` (also the warm-up).
Then open-loop load: requests arrive as a Poisson process at `load` x capacity for the soak's duration, each on
an idle keep-alive connection or a new one (arrivals never wait for a free connection), while a prober in a
process of its own GETs /health every `probe_interval_s` (in the load generator's event loop it measured that
loop's own delays too: a liveness probe comes from elsewhere). Reported:
- the status codes (only 200, 503, 429 and 504 are expected; a connection error or anything else is a defect);
- the accepted requests (200 or 504) and the fraction answered 200 within the deadline; the 503s at admission
  (by code: queue_full, overloaded) against the 504s after the deadline;
- Retry-After against the real drain, as a client that obeys it sees it: the time from a 503's answer until
  every request accepted before it has been answered (the queue it was refused from is gone then; the soak
  has one client, so its queue is served in order). For every 503 during the load (`retry_after_vs_drain`:
  the ratio's percentiles, and the share within 2x either way), and for the last one, when the load stops
  (`drain`: the drain is then faster, since the load generator and the refused requests stop taking CPU);
- the server's RSS after the warm-up and at the end, and /health latency percentiles.
The load generator shares the machine with the server: on a small machine its own event loop adds to the
/health latencies it measures.
"""

from __future__ import annotations

import asyncio
import bisect
import http.client
import json
import logging
import multiprocessing
import random
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from urllib.parse import urlsplit

from app.bench_serve import KeepAliveClient, percentile, ready_pair, rss_mb, server_process

log = logging.getLogger(__name__)

EXPECTED_STATUSES = {"200", "503", "429", "504"}
REUSE_IDLE_S = 2.0  # reuse a keep-alive connection idle for less than this (uvicorn closes them after 5 s)


@dataclass
class Outcome:
    """One open-loop request: when it was sent (s after the load began), how long its answer took, what it was."""

    sent_s: float
    latency_s: float
    status: str  # "200", "503", ... or "connection_error" / "client_timeout"
    code: str | None = None  # the JSON error code of an error answer
    retry_after: float | None = None


def raise_open_files_limit() -> None:
    """Open-loop overload holds a connection per request in flight: up to the hard limit (the server inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def body(text: str, source: str, target: str, beam_size: int) -> dict:
    return {"text": text, "source": source, "target": target, "beam_size": beam_size}


async def measure_capacity(url: str, texts: list[str], source: str, target: str, beam_size: int, clients: int,
                           seconds: float) -> float:
    """Requests/s answered 200 by `clients` closed-loop clients over `seconds`."""
    connections = [KeepAliveClient(url) for _ in range(clients)]
    end = time.perf_counter() + seconds
    answered = 0

    async def client(c: int) -> None:
        nonlocal answered
        i = c
        while time.perf_counter() < end:
            status = await connections[c].post_json("/translate", body(texts[i % len(texts)], source, target,
                                                                        beam_size))
            answered += status == 200
            i += clients

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    wall = time.perf_counter() - start
    for connection in connections:
        await connection.close()
    if not answered:
        raise RuntimeError("no request was answered 200 while measuring capacity")
    return answered / wall


def probe_health(url: str, stop: Event, interval_s: float, out: Connection) -> None:
    """In a process of its own: GET /health every interval_s over one keep-alive connection until `stop`; sends
    back (latencies in ms, failures)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30.0)
    latencies: list[float] = []
    failures = 0
    while not stop.is_set():
        start = time.perf_counter()
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            connection.close()  # the next request connects again
            ok = False
        latencies.append((time.perf_counter() - start) * 1000.0)
        failures += not ok
        stop.wait(interval_s)
    connection.close()
    out.send((latencies, failures))


class HealthProber:
    """probe_health in a child process (spawned: nothing of the load generator's loop or threads comes along)."""

    def __init__(self, url: str, interval_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=probe_health, args=(url, self._stop, interval_s, sender),
                                        name="health-prober", daemon=True)
        self._process.start()

    async def finish(self) -> tuple[list[float], int]:
        """Stop probing: the latencies (ms) and the failures."""
        self._stop.set()
        latencies, failures = await asyncio.to_thread(self._results.recv)
        await asyncio.to_thread(self._process.join, 10.0)
        return latencies, failures


async def sample_rss(pid: int, stop: asyncio.Event, interval_s: float = 5.0) -> list[tuple[float, float]]:
    """(seconds since the load started, RSS MB) every interval_s until `stop`: shows a plateau or a leak."""
    start, samples = time.monotonic(), []
    while not stop.is_set():
        rss = rss_mb(pid)
        if rss is not None:
            samples.append((round(time.monotonic() - start, 1), rss))
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except asyncio.TimeoutError:
            pass
    return samples


def rss_growth(samples: list[tuple[float, float]], warm_up_s: float) -> dict:
    """RSS after the load's first warm_up_s seconds against the end of the load, and the largest sample."""
    if not samples:
        return {}
    warm = next((rss for t, rss in samples if t >= warm_up_s), samples[-1][1])
    end = samples[-1][1]
    return {"warm_up_s": warm_up_s, "after_warm_up": warm, "end_of_load": end, "max": max(r for _, r in samples),
            "growth_after_warm_up_pct": round((end - warm) / warm * 100.0, 1),
            "samples": samples}


async def open_loop(url: str, texts: list[str], source: str, target: str, beam_size: int, rate: float,
                    seconds: float, deadline_s: float, seed: int = 0) -> tuple[list[Outcome], float]:
    """Poisson arrivals at `rate` per second for `seconds`; returns every outcome and when the load stopped."""
    rng = random.Random(seed)
    idle: list[tuple[KeepAliveClient, float]] = []  # connections free for a request, and since when
    outcomes: list[Outcome] = []
    start = time.perf_counter()

    async def connection() -> tuple[KeepAliveClient, bool]:
        """An idle connection used recently (the server closes idle ones after 5 s), else a new one."""
        while idle:
            conn, used = idle.pop()
            if time.perf_counter() - used < REUSE_IDLE_S:
                return conn, True
            await conn.close()
        return KeepAliveClient(url), False

    async def one(i: int) -> None:
        conn, reused = await connection()
        payload = body(texts[i % len(texts)], source, target, beam_size)
        sent = time.perf_counter()
        outcome = Outcome(sent - start, 0.0, "connection_error")
        try:
            try:
                status = await asyncio.wait_for(conn.post_json("/translate", payload), 2 * deadline_s + 30)
            except (OSError, asyncio.IncompleteReadError) as exc:
                if not reused or getattr(exc, "partial", b""):
                    raise
                await conn.close()  # closed by the server while idle, before it read the request: once more
                conn = KeepAliveClient(url)
                status = await asyncio.wait_for(conn.post_json("/translate", payload), 2 * deadline_s + 30)
            outcome.status = str(status)
            if status != 200:
                outcome.code = json.loads(conn.last_body or b"{}").get("error", {}).get("code")
                retry_after = conn.header("retry-after")
                outcome.retry_after = float(retry_after) if retry_after else None
        except asyncio.TimeoutError:
            outcome.status = "client_timeout"
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            outcome.code = type(exc).__name__
        outcome.latency_s = time.perf_counter() - sent
        outcomes.append(outcome)
        if outcome.status in EXPECTED_STATUSES and conn.writer is not None:
            idle.append((conn, time.perf_counter()))
        else:
            await conn.close()

    tasks = set()
    arrival, i = 0.0, 0
    while arrival < seconds:
        await asyncio.sleep(max(0.0, start + arrival - time.perf_counter()))
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        arrival += rng.expovariate(rate)
        i += 1
    load_end = time.perf_counter() - start
    while tasks:
        await asyncio.gather(*list(tasks))
    for conn, _ in idle:
        await conn.close()
    return outcomes, load_end


def latency_ms(values_s: list[float]) -> dict:
    if not values_s:
        return {"count": 0}
    ms = [v * 1000.0 for v in values_s]
    return {"count": len(ms), "p50_ms": round(percentile(ms, 50), 1), "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms), 1)}


class QueueAhead:
    """When the requests accepted before a moment had all been answered: the drain a refused client waits for."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        accepted = sorted((o for o in outcomes if o.status in ("200", "504")), key=lambda o: o.sent_s)
        self.sent = [o.sent_s for o in accepted]
        self.answered_by: list[float] = []  # [k]: when the first k + 1 accepted requests had all been answered
        for o in accepted:
            self.answered_by.append(max(self.answered_by[-1] if self.answered_by else 0.0, o.sent_s + o.latency_s))

    def drain_s(self, refused: Outcome) -> float | None:
        """Seconds from a 503's answer until every request accepted before it was sent had been answered (None
        when none had been accepted before it)."""
        ahead = bisect.bisect_left(self.sent, refused.sent_s)
        return self.answered_by[ahead - 1] - (refused.sent_s + refused.latency_s) if ahead else None


def drain_ratios(outcomes: list[Outcome]) -> dict:
    """Retry-After of every 503 against its QueueAhead drain: percentiles of the ratio, and the share within 2x
    either way."""
    queue = QueueAhead(outcomes)
    ratios = []
    for o in outcomes:
        drain = queue.drain_s(o) if o.status == "503" and o.retry_after else None
        if drain is not None and drain > 0:
            ratios.append(o.retry_after / drain)
    if not ratios:
        return {"count": 0}
    return {"count": len(ratios), "p10": round(percentile(ratios, 10), 2), "p50": round(percentile(ratios, 50), 2),
            "p90": round(percentile(ratios, 90), 2),
            "within_2x": round(sum(0.5 <= r <= 2.0 for r in ratios) / len(ratios), 4)}


def summarize(outcomes: list[Outcome], load_end: float, deadline_s: float) -> dict:
    """The soak's figures from the open-loop outcomes (see the module docstring)."""
    counts: dict[str, int] = {}
    codes_503: dict[str, int] = {}
    errors: dict[str, int] = {}  # connection errors by exception type
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
        if o.status == "503":
            codes_503[o.code or "?"] = codes_503.get(o.code or "?", 0) + 1
        elif o.status == "connection_error":
            errors[o.code or "?"] = errors.get(o.code or "?", 0) + 1
    accepted = [o for o in outcomes if o.status in ("200", "504")]
    in_time = [o for o in accepted if o.status == "200" and o.latency_s <= deadline_s]
    rejected = [o for o in outcomes if o.status == "503"]
    drain = None
    if rejected and accepted:
        last = max(rejected, key=lambda o: o.sent_s + o.latency_s)
        emptied = max(o.sent_s + o.latency_s for o in accepted)
        real = max(QueueAhead(outcomes).drain_s(last) or 0.0, 0.0)  # not the requests accepted after it
        drain = {"last_retry_after_s": last.retry_after, "real_drain_s": round(real, 2),
                 "ratio": round(last.retry_after / real, 2) if real > 0 and last.retry_after else None,
                 "queue_empty_after_load_s": round(emptied - load_end, 2)}
    return {"requests": len(outcomes), "status_counts": dict(sorted(counts.items())),
            "only_expected_statuses": set(counts) <= EXPECTED_STATUSES,
            "accepted": len(accepted), "rejected_at_admission": len(rejected), "rejected_codes": codes_503,
            "late_504": counts.get("504", 0), "connection_errors": errors,
            "accepted_within_deadline": round(len(in_time) / len(accepted), 4) if accepted else None,
            "answered_per_s": round(counts.get("200", 0) / load_end, 1) if load_end > 0 else None,
            "latency_200": latency_ms([o.latency_s for o in outcomes if o.status == "200"]),
            "latency_503": latency_ms([o.latency_s for o in rejected]), "drain": drain,
            "retry_after_vs_drain": drain_ratios(outcomes)}


async def soak_phases(url: str, pid: int, texts: list[str], source: str, target: str, beam_size: int,
                      clients: int, capacity_s: float, load: float, soak_s: float, deadline_s: float,
                      probe_interval_s: float) -> dict:
    capacity = await measure_capacity(url, texts, source, target, beam_size, clients, capacity_s)
    rss_warm = rss_mb(pid)
    rate = load * capacity
    log.info("capacity %.1f requests/s; open loop at %.1f requests/s for %.0f s", capacity, rate, soak_s)
    stop = asyncio.Event()
    prober = HealthProber(url, probe_interval_s)
    sampler = asyncio.create_task(sample_rss(pid, stop))
    outcomes, load_end = await open_loop(url, texts, source, target, beam_size, rate, soak_s, deadline_s)
    stop.set()
    health, health_failures = await prober.finish()
    rss_series = await sampler
    rss_end = rss_mb(pid)
    growth = round((rss_end - rss_warm) / rss_warm * 100.0, 1) if rss_warm and rss_end else None
    return {"capacity_requests_per_s": round(capacity, 1), "offered_requests_per_s": round(len(outcomes) / load_end, 1),
            **summarize(outcomes, load_end, deadline_s),
            "rss_mb": {"warm": rss_warm, "end": rss_end, "growth_pct": growth, "peak": rss_mb(pid, "VmHWM"),
                       "under_load": rss_growth(rss_series, min(60.0, soak_s / 10))},
            "health": {**latency_ms([ms / 1000.0 for ms in health]), "failures": health_failures}}


def bench_soak(models_dir: Path, minutes: float, load: float = 2.0, deadline_s: float = 10.0, clients: int = 32,
               capacity_s: float = 20.0, beam_size: int = 5, probe_interval_s: float = 0.1,
               sentences: list[str] | None = None, source: str | None = None, target: str | None = None,
               server_env: dict[str, str] | None = None, threads: int = 0) -> dict:
    """Start a server, measure its capacity, soak it at `load` x capacity for `minutes`; the report."""
    raise_open_files_limit()
    env = {"RNNMT_CACHE_SIZE": "0", "RNNMT_REQUEST_TIMEOUT_S": str(deadline_s),
           **({"RNNMT_THREADS": str(threads)} if threads else {}), **(server_env or {})}
    with server_process(models_dir, env, access_log=False) as server:
        pair, texts = ready_pair(server.url, models_dir, source, target, sentences)
        result = asyncio.run(soak_phases(server.url, server.process.pid, texts, *pair, beam_size, clients,
                                         capacity_s, load, minutes * 60.0, deadline_s, probe_interval_s))
    return {"models_dir": str(models_dir), "pair": f"{pair[0]}-{pair[1]}", "beam_size": beam_size,
            "deadline_s": deadline_s, "load": load, "soak_s": round(minutes * 60.0, 1), **result}


def format_soak(report: dict) -> str:
    """The soak report as a table."""
    def row(label: str, value: object) -> str:
        return f"{label:<44} {value}"

    drain = report["drain"] or {}
    ratios = report.get("retry_after_vs_drain") or {"count": 0}
    health = report["health"]
    lines = [f"bench-serve --soak {report['pair']}, beam {report['beam_size']}: {report['soak_s']:g} s at "
             f"{report['load']:g}x capacity, deadline {report['deadline_s']:g} s", "-" * 72,
             row("capacity (closed loop), requests/s", report["capacity_requests_per_s"]),
             row("offered (open loop, Poisson), requests/s", report["offered_requests_per_s"]),
             row("answered 200, requests/s", report["answered_per_s"]),
             row("status codes", ", ".join(f"{k}: {v}" for k, v in report["status_counts"].items())),
             row("only 200/503/429/504", "yes" if report["only_expected_statuses"] else "NO"),
             row("accepted answered within the deadline", report["accepted_within_deadline"]),
             row("503 at admission / 504 late", f"{report['rejected_at_admission']} / {report['late_504']} "
                 f"({', '.join(f'{k} {v}' for k, v in report['rejected_codes'].items()) or 'none'})"),
             row("latency 200 p50 / p99 ms", f"{report['latency_200'].get('p50_ms')} / "
                 f"{report['latency_200'].get('p99_ms')}"),
             row("latency 503 p50 / p99 ms", f"{report['latency_503'].get('p50_ms')} / "
                 f"{report['latency_503'].get('p99_ms')}"),
             row("Retry-After / drain, during load p10 p50 p90",
                 f"{ratios.get('p10')} {ratios.get('p50')} {ratios.get('p90')} (within 2x: "
                 f"{ratios.get('within_2x')} of {ratios['count']})"),
             row("last Retry-After s / real drain s (ratio)", f"{drain.get('last_retry_after_s')} / "
                 f"{drain.get('real_drain_s')} ({drain.get('ratio')})"),
             row("RSS MB warm / end (growth %) / peak", f"{report['rss_mb']['warm']} / {report['rss_mb']['end']} "
                 f"({report['rss_mb']['growth_pct']}) / {report['rss_mb'].get('peak')}"),
             row("RSS MB under load: after warm-up / end (growth %)",
                 f"{report['rss_mb']['under_load'].get('after_warm_up')} / "
                 f"{report['rss_mb']['under_load'].get('end_of_load')} "
                 f"({report['rss_mb']['under_load'].get('growth_after_warm_up_pct')})"),
             row("/health p50 / p99 / max ms (failures)", f"{health.get('p50_ms')} / {health.get('p99_ms')} / "
                 f"{health.get('max_ms')} ({health['failures']})")]
    return "\n".join(lines)
