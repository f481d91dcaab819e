"""`rnnmt bench`: decode and training throughput, latency, memory, and how close decoding gets to the
machine's own matmul limit (measured in the same run), for each decoding precision side by side."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from model.config import ModelConfig
from model.kernels import choose_kernel, resolve_precision
from model.kernels.int8 import int8_linear
from model.search import SearchConfig
from model.seq2seq import Seq2Seq
from model.translator import Translator
from training.data import make_batch, token_batches
from training.loss import smoothed_cross_entropy
from training.trainer import adam

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def encoder_flops_per_token(c: ModelConfig) -> float:
    """Multiply-adds x 2 per source token: every layer and direction, plus the attention keys."""
    directions = 2 if c.bidirectional else 1
    macs = 0
    for layer in range(c.encoder_layers):
        inputs = c.emb_size if layer == 0 else c.encoder_output_size
        macs += directions * GATES[c.cell] * c.encoder_hidden * (inputs + c.encoder_hidden)
    if c.attention == "bahdanau":
        macs += c.encoder_output_size * c.attention_size
    return 2.0 * macs


def decoder_flops_per_step(c: ModelConfig, src_len: float) -> float:
    """Multiply-adds x 2 of one decoder step for one hypothesis (the vocabulary projection included)."""
    macs = 0.0
    if c.attention == "bahdanau":
        macs += c.decoder_hidden * c.attention_size + src_len * (c.attention_size + c.encoder_output_size)
    for layer in range(c.decoder_layers):
        inputs = c.emb_size + c.encoder_output_size if layer == 0 else c.decoder_hidden
        macs += GATES[c.cell] * c.decoder_hidden * (inputs + c.decoder_hidden)
    macs += (c.decoder_hidden + c.encoder_output_size + c.emb_size) * c.readout_size
    macs += c.readout_size * c.tgt_vocab_size
    return 2.0 * macs


def machine_matmul_gflops(rounds: int = 3, precision: str = "fp32") -> float:
    """Best GFLOP/s (GOP/s for int8) over square matmuls of sizes 512..2048 on the current threads, in the
    precision's own product: fp32 and bf16 `a @ b`, int8 the quantized product its kernel calls
    (model/kernels/int8.py: the input quantized at every call, as when decoding).

    The best of several rounds: on a shared VM a single round varied from 138 to 181 GFLOP/s, and the
    fractions of this limit that the bench reports should not look better because the limit was low.
    """
    best = 0.0
    for _ in range(rounds):
        for n in (512, 1024, 1536, 2048):
            product = square_product(n, precision)
            product()
            repeats = max(2, int(2e9 / n**3))
            start = time.perf_counter()
            for _ in range(repeats):
                product()
            best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def square_product(n: int, precision: str) -> Callable[[], torch.Tensor]:
    """One (n, n) @ (n, n) product in `precision`, ready to call."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    if precision == "int8":
        linear = int8_linear(b, None)
        return lambda: linear(a)
    if precision == "bf16":
        a, b = a.bfloat16(), b.bfloat16()
    return lambda: a @ b


def decode_round(translator: Translator, texts: list[str], beam: int, batch_size: int) -> tuple[float, list]:
    """Seconds to translate `texts` with search alone (no reranking) at this beam and batch size, and the results."""
    config = translator.defaults.changed(beam_size=beam, n_best=1, reverse_weight=0.0, right_to_left_weight=0.0)
    translator.max_batch_size, translator.batch_tokens = batch_size, 10**9
    start = time.perf_counter()
    results = translator.translate(texts, config)
    return time.perf_counter() - start, results


def bench_decode(translator: Translator, sources: list[str], precisions: list[str], gflops: dict[str, float],
                 max_sentences: int, rounds: int = 3) -> list[dict[str, Any]]:
    """Throughput of greedy and beam 5 at batch 1 (64 sentences) and 64 (`max_sentences`) in each precision: the
    best of `rounds`, as the matmul limit is. Every round runs each precision in turn (the model's kernel switched),
    so a machine whose speed drifts (one round of greedy batch 64 varied by +-15% from the next on a shared VM)
    moves them alike, and the precisions' ratios hold."""
    model, c = translator.model, translator.model.config
    rows = [(precision, beam, batch) for precision in precisions for beam in (1, 5) for batch in (1, 64)]
    seconds = dict.fromkeys(rows, float("inf"))
    results: dict[tuple[str, int, int], list] = {}
    for round_ in range(rounds + 1):  # round 0 warms each up
        for precision in precisions:
            model.use_kernel(choose_kernel(c, translator.device, precision))
            for row in (r for r in rows if r[0] == precision):
                texts = sources[: max_sentences if row[2] > 1 else 64]
                elapsed, results[row] = decode_round(translator, texts if round_ else texts[: row[2]], *row[1:])
                if round_:
                    seconds[row] = min(seconds[row], elapsed)
    out = []
    for (precision, beam, batch), best in seconds.items():
        done = results[(precision, beam, batch)]
        src_tokens = sum(len(r.src_pieces) + 1 for r in done)
        tgt_tokens = sum(len(r.hypotheses[0].tgt_pieces) + 1 for r in done)
        # Work done: the encoder once per source token, the decoder once per step per beam hypothesis.
        flops = src_tokens * encoder_flops_per_token(c) + tgt_tokens * beam * decoder_flops_per_step(
            c, src_tokens / len(done))
        out.append({"precision": precision, "search": "greedy" if beam == 1 else f"beam{beam}",
                    "batch_size": batch, "sentences": len(done), "rounds": rounds,
                    "sentences_per_s": round(len(done) / best, 2), "target_tokens_per_s": round(tgt_tokens / best, 1),
                    "limit_fraction": float(f"{flops / best / 1e9 / gflops[precision]:.3g}")})  # 3 significant digits
    return out


def bench_latencies(translator: Translator, sources: list[str], searches: dict[str, SearchConfig],
                    count: int) -> dict[str, dict[str, float]]:
    """p50/p95 of one sentence at a time for each of `searches`, measured in the same minutes: every sentence is
    translated by each search in turn (the order rotating), so a machine whose speed drifts (a shared VM's does,
    by a third within a minute) moves them all alike and their ratios hold."""
    times: dict[str, list[float]] = {name: [] for name in searches}
    names = list(searches)
    for i, text in enumerate(sources[:count]):
        for name in names[i % len(names):] + names[: i % len(names)]:
            start = time.perf_counter()
            translator.translate([text], searches[name])
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: {"p50": round(statistics.median(row), 2), "p95": round(statistics.quantiles(row, n=20)[18], 2),
                   "beam_size": searches[name].beam_size} for name, row in times.items()}


def latency_searches(translator: Translator) -> dict[str, SearchConfig]:
    """The single-sentence searches `rnnmt bench` times: the model's beam, greedy and beam 5 (the targets'), with
    the model's reranking when it has its rerankers, and each over the model's shortlist when it has one."""
    defaults, off = translator.defaults, {"reverse_weight": 0.0, "right_to_left_weight": 0.0}
    plain = {"beam": defaults.changed(**off, shortlist=False), "greedy": defaults.changed(beam_size=1, **off,
                                                                                         shortlist=False)}
    if defaults.beam_size != 5:
        plain["beam5"] = defaults.changed(beam_size=5, n_best=1, **off, shortlist=False)
    if translator.reranks(defaults):
        plain["reranked"] = defaults.changed(shortlist=False)
    searches = dict(plain)
    if translator.bundle.shortlist is not None:
        searches.update({f"shortlist-{name}": config.changed(shortlist=True) for name, config in plain.items()})
    return searches


def bench_training(translator: Translator, sources: list[str], targets: list[str], steps: int,
                   batch_tokens: int) -> float:
    """Target tokens/s of training steps on a fresh copy of the architecture (forward, backward, Adam)."""
    bundle = translator.bundle
    model = Seq2Seq(bundle.model.config).train()
    optimizer = adam(list(model.parameters()), 1e-3)
    src_ids, tgt_ids = bundle.src_tokenizer.encode(sources), bundle.tgt_tokenizer.encode(targets)
    batches = token_batches([len(s) for s in src_ids], [len(t) for t in tgt_ids], batch_tokens, 0, 0)
    tokens, seconds = 0, 0.0
    for step in range(steps + 2):
        indices = batches[step % len(batches)]
        batch = make_batch([src_ids[i] for i in indices], [tgt_ids[i] for i in indices])
        start = time.perf_counter()
        logits = model(batch.src, batch.src_lengths, batch.tgt_in)
        loss, _ = smoothed_cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), 0.1, 0)
        optimizer.zero_grad()
        (loss / batch.num_tgt_tokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= 2:  # the first steps warm up allocators
            tokens, seconds = tokens + batch.num_tgt_tokens, seconds + time.perf_counter() - start
    return tokens / seconds


def run_bench(translator: Translator, sources: list[str], targets: list[str] | None, threads: int,
              max_sentences: int = 512, train_steps: int = 30, latency_count: int = 100,
              precisions: tuple[str, ...] = ("fp32",), limit_rounds: int = 3) -> dict[str, Any]:
    """Decoding in each of `precisions` side by side (the model's kernel chosen anew for each), each against
    this machine's matmul limit in that precision; training once (fp32)."""
    torch.set_num_threads(threads)
    model, c = translator.model, translator.model.config
    resolved = list(dict.fromkeys(resolve_precision(p, c, translator.device) for p in precisions))  # fail early
    gflops = {precision: machine_matmul_gflops(limit_rounds, precision) for precision in resolved}
    decode = bench_decode(translator, sources, resolved, gflops, max_sentences)
    per_precision = []
    for precision in resolved:
        model.use_kernel(choose_kernel(c, translator.device, precision))
        for reranker in (translator.reverse, translator.right_to_left):
            if reranker is not None:
                reranker.model.use_kernel(choose_kernel(reranker.model.config, translator.device, precision))
        translator.max_batch_size, translator.batch_tokens = 64, 10**9
        latencies = bench_latencies(translator, sources, latency_searches(translator), latency_count)
        shortlisted = {name.removeprefix("shortlist-"): row for name, row in latencies.items()
                       if name.startswith("shortlist-")} or None
        per_precision.append({"precision": precision, "kernel": model.kernel.name,
                              "machine_matmul_gflops": round(gflops[precision], 1), "latency_ms": latencies["beam"],
                              "greedy_latency_ms": latencies["greedy"], "beam5_latency_ms": latencies.get("beam5"),
                              "reranked_latency_ms": latencies.get("reranked"), "shortlist_latency_ms": shortlisted})
    train_tps = bench_training(translator, sources, targets, train_steps, 1100) if targets else None
    first = per_precision[0]
    return {
        "model": str(translator.bundle.path), "threads": threads, "params": translator.model.num_parameters(),
        "flops_per_target_token": round(decoder_flops_per_step(c, 14.0)),
        "encoder_flops_per_source_token": round(encoder_flops_per_token(c)),
        "machine_matmul_gflops": first["machine_matmul_gflops"], "decode": decode, "latency_ms": first["latency_ms"],
        "precisions": per_precision,
        "train_tokens_per_s": None if train_tps is None else round(train_tps, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [f"model {report['model']}  params {report['params']:,}  threads {report['threads']}",
             f"model: {report['flops_per_target_token'] / 1e6:.2f} MFLOP per target token "
             "(decoder step, 14-token source)"]
    for p in report.get("precisions", [{"precision": "fp32", "kernel": "", **report}]):
        unit = "GOP/s" if p["precision"] == "int8" else "GFLOP/s"
        lines.append(f"machine {p['precision']} matmul: {p['machine_matmul_gflops']} {unit} (best of 3); "
                     f"kernel {p['kernel']}")
    lines.append(f"{'precision':9} {'search':8} {'batch':>5} {'sent/s':>9} {'tgt tok/s':>10} {'of limit':>9}"
                 f"   (best of {report['decode'][0]['rounds']} rounds; limit of that precision)")
    for r in report["decode"]:
        lines.append(f"{r.get('precision', 'fp32'):9} {r['search']:8} {r['batch_size']:>5} {r['sentences_per_s']:>9} "
                     f"{r['target_tokens_per_s']:>10} {r['limit_fraction'] * 100:>8.1f}%")
    for p in report.get("precisions", [{"precision": "fp32", **report}]):
        lat = p["latency_ms"]
        lines.append(f"single-sentence latency, {p['precision']} (beam {lat['beam_size']}): p50 {lat['p50']} ms, "
                     f"p95 {lat['p95']} ms")
        if p.get("reranked_latency_ms"):
            rr = p["reranked_latency_ms"]
            lines.append(f"single-sentence latency, {p['precision']} (beam {rr['beam_size']} reranked, "
                         f"model/rerank.py): p50 {rr['p50']} ms, p95 {rr['p95']} ms")
        for key in ("beam5_latency_ms", "greedy_latency_ms"):
            if p.get(key):
                row = p[key]
                beam = "greedy" if row["beam_size"] == 1 else f"beam {row['beam_size']}"
                lines.append(f"single-sentence latency, {p['precision']} ({beam}): p50 {row['p50']} ms, "
                             f"p95 {row['p95']} ms")
        for search, row in (p.get("shortlist_latency_ms") or {}).items():
            beam = "greedy" if row["beam_size"] == 1 else f"beam {row['beam_size']}"
            lines.append(f"single-sentence latency, {p['precision']} ({beam}{' reranked' * (search == 'reranked')}, "
                         f"shortlist): p50 {row['p50']} ms, p95 {row['p95']} ms")
    if report["train_tokens_per_s"] is not None:
        lines.append(f"training: {report['train_tokens_per_s']} target tokens/s")
    lines.append(f"peak RSS: {report['peak_rss_mb']} MB")
    return "\n".join(lines)
