"""`rnnmt bench-serve`: the real server under concurrent load, with micro-batching on and then off.

Each run starts `rnnmt serve` as a subprocess on a free 127.0.0.1 port (the cache off, so every request is
decoded), waits for /ready, then `clients` asyncio tasks each send `requests` single-sentence POST /translate
requests back to back, each over its own keep-alive connection (`KeepAliveClient`). Reported per
run: throughput (requests/s), latency percentiles, the mean decode batch size read from /metrics, and the
server's resident memory (Linux /proc): when ready, at the end, and its peak (VmHWM, loading included).
"Off" is max_batch_sentences=1, max_wait_ms=0 and regroup_ms=0: one sentence per decode call, no waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

SAMPLES = {
    "en": ["A man is riding a bike down the street.", "Two dogs are playing in the snow.",
           "A little girl is reading a book on a bench.", "People are walking along the beach at sunset.",
           "A woman in a red dress is singing on stage.", "The children are eating ice cream in the park.",
           "A group of men is playing football.", "An old man sits in front of his house.",
           "A cat is sleeping on the sofa.", "Three people are waiting for the bus."],
    "de": ["Ein Mann fährt mit dem Fahrrad die Straße entlang.", "Zwei Hunde spielen im Schnee.",
           "Ein kleines Mädchen liest ein Buch auf einer Bank.", "Menschen gehen bei Sonnenuntergang am Strand.",
           "Eine Frau in einem roten Kleid singt auf der Bühne.", "Die Kinder essen im Park ein Eis.",
           "Eine Gruppe von Männern spielt Fußball.", "Ein alter Mann sitzt vor seinem Haus.",
           "Eine Katze schläft auf dem Sofa.", "Drei Leute warten auf den Bus."],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A `rnnmt serve` subprocess: its base URL, its process and its log file."""

    url: str
    process: subprocess.Popen
    log_file: Path


@contextmanager
def server_process(models_dir: Path, env: Mapping[str, str] | None = None, timeout_s: float = 120.0,
                   log_file: Path | None = None, access_log: bool = True) -> Iterator[ServerProcess]:
    """Start `rnnmt serve` on a free port with extra RNNMT_* env; yield it once it answers /health.

    The caller decides whether it must also be ready (/ready). The server is terminated on exit (if still running).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--models-dir", str(models_dir)] + ([] if access_log else ["--no-access-log"])
    full_env = {**os.environ, **(env or {})}
    if log_file is None:
        log_file = Path(tempfile.mkstemp(prefix="rnnmt-serve-", suffix=".log")[1])
    root = Path(__file__).resolve().parent.parent
    with open(log_file, "wb") as out:
        process = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with code {process.returncode}; log: {log_file}\n"
                                   + log_file.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not start within {timeout_s:g} s; log: {log_file}")
            time.sleep(0.2)
        yield ServerProcess(url, process, log_file)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_server(models_dir: Path, env: Mapping[str, str] | None = None, timeout_s: float = 120.0,
                   log_file: Path | None = None, access_log: bool = True) -> Iterator[str]:
    """`server_process`, yielding only its base URL."""
    with server_process(models_dir, env, timeout_s, log_file, access_log) as server:
        yield server.url


@dataclass
class RunResult:
    mode: str
    requests: int
    errors: int
    wall_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch_sentences: float | None
    mean_batch_ms: float | None  # decode time per batch
    decode_busy: float | None  # fraction of the wall time the decode worker was busy
    rss_ready_mb: float | None = None  # the server's resident memory once ready, before the load
    rss_end_mb: float | None = None  # ... at the end of the load
    rss_peak_mb: float | None = None  # ... its peak over its whole life (VmHWM)


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """Resident memory of a process (Linux /proc), in MB: now (VmRSS) or its peak so far (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


class KeepAliveClient:
    """One persistent HTTP/1.1 connection that POSTs JSON and reads Content-Length responses.

    The load generator shares the 2 cores with the server it measures: httpx spent about 40% of a core
    at 60 requests/s, which the server's decode threads then lacked. This client costs a few percent.
    """

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        parts = httpx.URL(url)
        self.host, self.port = parts.host, parts.port or 80
        self.extra_headers = "".join(f"\r\n{name}: {value}" for name, value in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_head = ""  # status line and headers of the last response
        self.last_body = b""

    async def connect(self) -> None:
        """Open the connection now (post_json opens it when needed)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def header(self, name: str) -> str | None:
        """A header of the last response."""
        match = re.search(rf"^{name}:\s*(.*?)\s*$", self.last_head, re.I | re.M)
        return match.group(1) if match else None

    async def post_json(self, path: str, body: dict) -> int:
        """Send one request, read the whole response; returns the status code.

        The request is written before the first suspension when the connection is already open."""
        return await self.request("POST", path, json.dumps(body).encode())

    async def request(self, method: str, path: str, payload: bytes | None = None) -> int:
        """Send one request (a JSON body, if any); read the whole response into last_head and last_body.

        A kept-alive connection the server closed while it sat idle (uvicorn's keep-alive timeout is 5 s: the
        warm-up's first connections wait that long for the last ones when nothing batches) is opened again and
        the request sent once more, as browsers and HTTP libraries do; a new connection closed is an error."""
        reused = self.writer is not None
        await self.connect()
        body_headers = ("" if payload is None
                        else f"\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}")
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}{body_headers}"
                          f"{self.extra_headers}\r\n\r\n".encode() + (payload or b""))
        try:
            head = self.last_head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            await self.close()
            return await self.request(method, path, payload)
        status = int(head.split(" ", 2)[1])
        length = re.search(r"^content-length:\s*(\d+)", head, re.I | re.M)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {head.splitlines()[0]}")
        self.last_body = await self.reader.readexactly(int(length.group(1)))
        if re.search(r"^connection:\s*close", head, re.I | re.M):
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def drive(url: str, sentences: list[str], source: str, target: str, clients: int, requests: int,
                beam_size: int, mode: str) -> RunResult:
    """`clients` concurrent tasks, each sending `requests` single-sentence requests one after the other."""
    connections = [KeepAliveClient(url) for _ in range(clients)]

    async def one(c: int, i: int) -> tuple[float, bool]:
        body = {"text": sentences[i % len(sentences)], "source": source, "target": target, "beam_size": beam_size}
        start = time.perf_counter()
        status = await connections[c].post_json("/translate", body)
        return time.perf_counter() - start, status == 200

    async def worker(c: int) -> list[tuple[float, bool]]:
        return [await one(c, c * requests + j) for j in range(requests)]

    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        await asyncio.gather(*(one(c, c) for c in range(clients)))  # warm-up: connections, first batches
        before = batch_totals((await client.get("/metrics")).text)
        start = time.perf_counter()
        results = [r for rs in await asyncio.gather(*(worker(c) for c in range(clients))) for r in rs]
        wall = time.perf_counter() - start
        after = batch_totals((await client.get("/metrics")).text)
    for connection in connections:
        await connection.close()
    latencies = [seconds * 1000.0 for seconds, _ in results]
    sentences, batches, seconds = (a - b for a, b in zip(after, before))
    return RunResult(mode=mode, requests=len(results), errors=sum(not ok for _, ok in results), wall_s=round(wall, 3),
                     requests_per_s=round(len(results) / wall, 1), p50_ms=round(percentile(latencies, 50), 1),
                     p95_ms=round(percentile(latencies, 95), 1), p99_ms=round(percentile(latencies, 99), 1),
                     mean_batch_sentences=round(sentences / batches, 2) if batches else None,
                     mean_batch_ms=round(seconds / batches * 1000.0, 1) if batches else None,
                     decode_busy=round(seconds / wall, 3))


def batch_totals(metrics_text: str) -> tuple[float, float, float]:
    """Sentences decoded, decode calls and decode seconds so far, over all models (from /metrics)."""
    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", metrics_text, re.M))

    return (total("rnnmt_batch_sentences_sum"), total("rnnmt_batch_sentences_count"),
            total("rnnmt_batch_duration_seconds_sum"))


def pick_pair(url: str, source: str | None, target: str | None) -> tuple[str, str]:
    pairs = [(p["source"], p["target"]) for p in httpx.get(f"{url}/languages", timeout=10).json()["pairs"]]
    for pair in pairs:
        if source in (None, pair[0]) and target in (None, pair[1]):
            return pair
    raise RuntimeError(f"no served pair matches {source}-{target}; served: {pairs}")


def ready_pair(url: str, models_dir: Path, source: str | None, target: str | None,
               sentences: list[str] | None) -> tuple[tuple[str, str], list[str]]:
    """The pair to load-test on a ready server, and the sentences to send (built-in ones by default)."""
    if httpx.get(f"{url}/ready", timeout=10).status_code != 200:
        raise RuntimeError(f"no model could be loaded from {models_dir}")
    pair = pick_pair(url, source, target)
    texts = sentences or SAMPLES.get(pair[0])
    if not texts:
        raise RuntimeError(f"no built-in sentences in {pair[0]!r}: pass --sentences FILE")
    return pair, texts


def bench_serve(models_dir: Path, clients: int = 32, requests: int = 20, beam_size: int = 5,
                sentences: list[str] | None = None, source: str | None = None, target: str | None = None,
                batching_env: Mapping[str, str] | None = None, threads: int = 0) -> dict:
    """Run the load twice (batching on, then off) and return both results and the speedup."""
    common = {"RNNMT_CACHE_SIZE": "0", "RNNMT_MAX_QUEUE": str(max(1024, 4 * clients)),
              "RNNMT_REQUEST_TIMEOUT_S": "600"}
    if threads:
        common["RNNMT_THREADS"] = str(threads)
    modes = {"batching": {**common, **(batching_env or {})},
             "no batching": {**common, "RNNMT_MAX_BATCH_SENTENCES": "1", "RNNMT_MAX_WAIT_MS": "0",
                             "RNNMT_REGROUP_MS": "0"}}
    results = []
    for mode, env in modes.items():
        with server_process(models_dir, env, access_log=False) as server:
            pair, texts = ready_pair(server.url, models_dir, source, target, sentences)
            pid, ready = server.process.pid, rss_mb(server.process.pid)
            log.info("%s: %d clients x %d requests, %s-%s, beam %d", mode, clients, requests, *pair, beam_size)
            result = asyncio.run(drive(server.url, texts, *pair, clients, requests, beam_size, mode))
            results.append(replace(result, rss_ready_mb=ready, rss_end_mb=rss_mb(pid),
                                   rss_peak_mb=rss_mb(pid, "VmHWM")))
    on, off = results
    return {"models_dir": str(models_dir), "pair": f"{pair[0]}-{pair[1]}", "clients": clients,
            "requests_per_client": requests, "beam_size": beam_size, "results": [asdict(r) for r in results],
            "speedup": round(on.requests_per_s / off.requests_per_s, 2) if off.requests_per_s else None}


def format_table(report: dict) -> str:
    header = f"{'mode':<12} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} " \
             f"{'p99 ms':>8} {'batch':>6} {'ms/batch':>8} {'busy':>5} {'RSS MB ready/end/peak':>22}"
    lines = [f"bench-serve {report['pair']}: {report['clients']} clients x {report['requests_per_client']} "
             f"requests, beam {report['beam_size']}", header, "-" * len(header)]
    for r in report["results"]:
        batch = "-" if r["mean_batch_sentences"] is None else f"{r['mean_batch_sentences']:.1f}"
        batch_ms = "-" if r["mean_batch_ms"] is None else f"{r['mean_batch_ms']:.1f}"
        rss = "/".join("-" if r.get(k) is None else f"{r[k]:.0f}"
                       for k in ("rss_ready_mb", "rss_end_mb", "rss_peak_mb"))
        lines.append(f"{r['mode']:<12} {r['requests']:>8} {r['errors']:>6} {r['requests_per_s']:>8.1f} "
                     f"{r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {batch:>6} {batch_ms:>8} "
                     f"{r['decode_busy']:>5.0%} {rss:>22}")
    lines.append(f"speedup from micro-batching: {report['speedup']}x throughput")
    return "\n".join(lines)


# ---- `rnnmt bench-serve --fairness`: one client's latency while another floods the server -------------------

FAIRNESS_TARGET = 2.0  # the goal for p95 latency under flood / p95 latency idle


def latency_summary(latencies_ms: list[float]) -> dict:
    return {"requests": len(latencies_ms), "p50_ms": round(percentile(latencies_ms, 50), 1),
            "p95_ms": round(percentile(latencies_ms, 95), 1), "p99_ms": round(percentile(latencies_ms, 99), 1),
            "max_ms": round(max(latencies_ms), 1)}


async def drive_fairness(url: str, keys: Mapping[str, str], texts: list[str], source: str, target: str,
                         beam_size: int, single_requests: int, flood_sentences: int, flood_batch: int,
                         flood_connections: int) -> dict:
    """Client "single" alone (closed loop), then again while client "flood" sends `flood_sentences`."""
    def body(text: str | list[str]) -> dict:
        return {"text": text, "source": source, "target": target, "beam_size": beam_size}

    single = KeepAliveClient(url, {"X-API-Key": keys["single"]})
    floods = [KeepAliveClient(url, {"X-API-Key": keys["flood"]}) for _ in range(flood_connections)]

    async def one_single(i: int) -> float:
        start = time.perf_counter()
        status = await single.post_json("/translate", body(texts[i % len(texts)]))
        if status != 200:
            raise RuntimeError(f'client "single" got HTTP {status}: {single.last_head.splitlines()[0]}')
        return (time.perf_counter() - start) * 1000.0

    chunks = [(i, min(flood_batch, flood_sentences - i)) for i in range(0, flood_sentences, flood_batch)]
    answered = rejected = 0
    first_sent = asyncio.Event()

    async def flooder(conn: KeepAliveClient) -> None:
        nonlocal answered, rejected
        while chunks:
            first, n = chunks.pop(0)
            batch = [texts[(first + j) % len(texts)] for j in range(n)]
            first_sent.set()  # post_json writes the request before it first waits (the connection is open)
            while (status := await conn.post_json("/translate", body(batch))) == 503:
                rejected += 1
                await asyncio.sleep(float(conn.header("retry-after") or 1))
            if status != 200:
                raise RuntimeError(f'client "flood" got HTTP {status}: {conn.last_head.splitlines()[0]}')
            answered += n

    async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
        async def flood() -> tuple[float, tuple[float, float, float]]:
            start = time.perf_counter()
            await asyncio.gather(*(flooder(conn) for conn in floods))
            return time.perf_counter() - start, batch_totals((await http.get("/metrics")).text)

        await one_single(-1)  # warm-up: the connection, the first decode
        idle = [await one_single(i) for i in range(single_requests)]
        before = batch_totals((await http.get("/metrics")).text)
        await asyncio.gather(*(conn.connect() for conn in floods))  # now: the server closes idle connections
        flood_task = asyncio.create_task(flood())
        await first_sent.wait()
        busy: list[float] = []
        while not flood_task.done() or len(busy) < single_requests:
            busy.append(await one_single(len(busy)))
        flood_s, after = await flood_task
    for conn in [single, *floods]:
        await conn.close()
    sentences, batches, _ = (a - b for a, b in zip(after, before))
    idle_stats, busy_stats = latency_summary(idle), latency_summary(busy)
    return {"idle": idle_stats, "flood": busy_stats,
            "p95_ratio": round(busy_stats["p95_ms"] / idle_stats["p95_ms"], 2), "flood_s": round(flood_s, 2),
            "flood_answered": answered, "flood_sentences_per_s": round(answered / flood_s, 1), "flood_503s": rejected,
            "mean_batch_sentences": round(sentences / batches, 2) if batches else None}


def bench_fairness(models_dir: Path, beam_size: int = 5, single_requests: int = 40, flood_sentences: int = 2000,
                   flood_batch: int = 8, flood_connections: int = 8, sentences: list[str] | None = None,
                   source: str | None = None, target: str | None = None,
                   batching_env: Mapping[str, str] | None = None, threads: int = 0) -> dict:
    """Start the server with two API keys ("flood", "single") and measure "single"'s latency idle and under flood."""
    from app.keys import KeyStore, Limits

    with tempfile.TemporaryDirectory(prefix="rnnmt-fairness-") as folder:
        store = KeyStore(Path(folder) / "keys.sqlite")
        keys = {name: store.add(name, Limits()) for name in ("flood", "single")}
        env = {"RNNMT_CACHE_SIZE": "0", "RNNMT_MAX_QUEUE": "1024", "RNNMT_REQUEST_TIMEOUT_S": "600",
               **({"RNNMT_THREADS": str(threads)} if threads else {}), **(batching_env or {}),
               "RNNMT_KEYS_DB": str(store.path)}
        with running_server(models_dir, env, access_log=False) as url:
            pair, texts = ready_pair(url, models_dir, source, target, sentences)
            log.info("fairness: %d sentences in %d-sentence requests over %d connections, %s-%s, beam %d",
                     flood_sentences, flood_batch, flood_connections, *pair, beam_size)
            result = asyncio.run(drive_fairness(url, keys, texts, *pair, beam_size, single_requests, flood_sentences,
                                                flood_batch, flood_connections))
    return {"models_dir": str(models_dir), "pair": f"{pair[0]}-{pair[1]}", "beam_size": beam_size,
            "single_requests": single_requests, "flood_sentences": flood_sentences, "flood_batch": flood_batch,
            "flood_connections": flood_connections, **result, "target_ratio": FAIRNESS_TARGET}


def format_fairness(report: dict) -> str:
    header = f"{'client single':<14} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    lines = [f"bench-serve --fairness {report['pair']}, beam {report['beam_size']}: \"flood\" sends "
             f"{report['flood_sentences']} sentences in {report['flood_batch']}-sentence requests over "
             f"{report['flood_connections']} connections; \"single\" one sentence at a time", header, "-" * len(header)]
    for label, r in (("idle", report["idle"]), ("under flood", report["flood"])):
        lines.append(f"{label:<14} {r['requests']:>8} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                     f"{r['max_ms']:>8.1f}")
    met = "met" if report["p95_ratio"] <= report["target_ratio"] else "MISSED"
    batch = "-" if report["mean_batch_sentences"] is None else f"{report['mean_batch_sentences']:.1f}"
    lines.append(f"p95 under flood / idle: {report['p95_ratio']:.2f}x (target <= {report['target_ratio']:g}: {met})")
    lines.append(f"flood: {report['flood_answered']}/{report['flood_sentences']} sentences in "
                 f"{report['flood_s']:.1f} s, {report['flood_sentences_per_s']:.1f} sentences/s, "
                 f"{report['flood_503s']} x 503, mean batch {batch} sentences")
    return "\n".join(lines)
