"""The `rnnmt` command line: one entry point, a subcommand per job; heavy imports inside each subcommand.

User errors (typed RnnmtError) print one line and exit with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from model.atomic import atomic_open, atomic_write

if TYPE_CHECKING:
    from types import FrameType

    from app.settings import Settings
    from training.prepare import DataConfig

EXIT_USER_ERROR = 2


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _report_path(text: str) -> str:
    """A file a command writes its report to: its folder must exist (checked before the work, not after)."""
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    return text


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def _load_factor(text: str) -> float:
    """'2x' or '2' -> 2.0 (times the measured capacity)."""
    return _positive_float(text.strip().lower().removesuffix("x"))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _int_list(text: str) -> list[int]:
    return [_positive_int(part.strip()) for part in text.split(",") if part.strip()]


def _float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


def _prepare_config(args: argparse.Namespace) -> DataConfig:
    """The DataConfig of `rnnmt prepare`: a config file's data section or the options; --corpus, --valid-corpus
    and downloaded corpora (`--download NAME[:WEIGHT]`) replace its corpora."""
    from dataclasses import replace

    from model.errors import ConfigError
    from training.config import load_config
    from training.prepare import DataConfig

    downloads = args.download or []
    if args.config:
        data = load_config(args.config, args.set).data
    else:
        data = DataConfig(
            prepared_dir=args.out, dataset=None if args.src else args.dataset, pair=args.pair,
            data_dir=args.data_dir, download="multi30k" in downloads, train_src=args.src, train_tgt=args.tgt,
            valid_src=args.valid_src or args.src, valid_tgt=args.valid_tgt or args.tgt, vocab_size=args.vocab_size,
            joint_vocab=not args.separate_vocab)
    corpora = list(args.corpus or [])
    named = [name for name in downloads if name != "multi30k"]
    if named:
        from training.corpora import CorpusSpec
        from training.download import fetch_opus

        for text in named:
            path = fetch_opus(CorpusSpec.parse(text).source, data.langs)
            print(f"downloaded {path}: corpus opus:{text}")
            corpora.append(f"opus:{text}")
    if not corpora and not args.valid_corpus:
        return data
    if args.src and corpora:
        raise ConfigError("give training data as --corpus (or --download NAME) or as --src/--tgt, not both")
    return replace(data, corpora=corpora or data.corpora, valid_corpora=args.valid_corpus or data.valid_corpora)


def prepare_summary(folder: Path, report: dict) -> str:
    """prepare.json's report as a few lines: read, dropped by rule, kept, examples, per corpus, validation."""
    train, valid = report["train"], report["valid"]

    def counts(named: dict[str, int]) -> str:
        return "; ".join(f"{name} {n:,}" for name, n in named.items()) or "none"

    return "\n".join([
        f"prepared {folder}",
        f"  read      {train.get('read', train['kept']):,} pairs",
        f"  dropped   {counts(train.get('dropped', {}))}",
        f"  kept      {train['kept']:,} distinct pairs -> {train.get('examples', train['kept']):,} training examples "
        "(corpus weights applied)",
        f"  corpora   {counts(train.get('corpora', {}))}",
        f"  valid     {valid['kept']:,} pairs ({counts(valid.get('corpora', {}))})",
    ])


def cmd_prepare(args: argparse.Namespace) -> None:
    from training.prepare import prepare

    folder = prepare(_prepare_config(args), force=args.force)
    report = json.loads((folder / "prepare.json").read_text())["report"]
    print(prepare_summary(folder, report))


def cmd_train(args: argparse.Namespace) -> None:
    from training.config import load_config
    from training.trainer import train

    config = load_config(args.config, args.set)
    metrics = train(config, args.out, device=args.device, max_steps=args.max_steps, resume=args.resume)
    if metrics:
        print(json.dumps(metrics, indent=2))


def _search_config(translator, args: argparse.Namespace, **changes):
    """The decoding settings of a command: the model's (its folder's config.json), changed by the options given."""
    return translator.defaults.changed(beam_size=args.beam_size, n_best=getattr(args, "n_best", None),
                                       length_penalty=getattr(args, "length_penalty", None),
                                       reverse_weight=getattr(args, "reverse_weight", None),
                                       right_to_left_weight=getattr(args, "right_to_left_weight", None),
                                       stop_early=False if getattr(args, "exact_stop", False) else None,
                                       shortlist=getattr(args, "shortlist", None), **changes)


def _translator(args: argparse.Namespace, precision: str | None = None):
    from model.errors import InputError
    from model.translator import Translator

    precision = precision or getattr(args, "precision", None) or "fp32"

    def load(folder: str) -> Translator:
        return Translator.from_folder(folder, device=args.device, precision=precision, batch_tokens=args.batch_tokens,
                                      max_batch_size=getattr(args, "batch_size", None) or 128)

    translator = load(args.model)
    if getattr(args, "shortlist", None) and translator.bundle.shortlist is None:
        raise InputError(f"--shortlist: {args.model} has no shortlist.safetensors (build one: rnnmt shortlist "
                         f"--model {args.model})")
    reverse = _reranker_folder(args, translator, "reverse")
    if reverse is not None:
        translator.use_reverse(load(str(reverse)))
    right_to_left = _reranker_folder(args, translator, "right_to_left")
    if right_to_left is not None:
        translator.use_right_to_left(load(str(right_to_left)))
    return translator


def _reranker_folder(args: argparse.Namespace, translator, role: str) -> Path | None:
    """A model that reranks the beams (model/rerank.py), role 'reverse' or 'right_to_left': --reverse-model /
    --right-to-left-model, else the folder beside the model that has that role, when the settings rerank with it
    (a weight > 0) or tune may choose to."""
    from model.checkpoint import find_reverse_folder, find_right_to_left_folder
    from model.errors import InputError

    option = role.replace("_", "-")
    named = getattr(args, f"{role}_model", None)
    if named == "none":
        return None
    if named:
        return Path(named)
    weight = getattr(args, f"{role}_weight", None)
    wanted = weight if weight is not None else getattr(translator.defaults, f"{role}_weight")
    if wanted <= 0 and not any(w > 0 for w in getattr(args, f"{role}_weights", None) or ()):
        return None
    found = (find_reverse_folder if role == "reverse" else find_right_to_left_folder)(args.model)
    bundle = translator.bundle
    what = (f"the {bundle.target_lang}->{bundle.source_lang} model" if role == "reverse"
            else f"a right-to-left {bundle.source_lang}->{bundle.target_lang} model")
    if found is None and weight:
        raise InputError(f"--{option}-weight needs {what}: give --{option}-model DIR")
    if found is None:
        logging.getLogger(__name__).warning("no %s beside %s: beams are not reranked with it", what, args.model)
    return found


def cmd_translate(args: argparse.Namespace) -> None:
    import contextlib
    import io

    translator = _translator(args)
    config = _search_config(translator, args)
    raw_in = open(args.input, "rb") if args.input else sys.stdin.buffer  # noqa: SIM115
    # Strict UTF-8: invalid bytes are an error with a line number, not silent replacement characters.
    lines = (line.rstrip("\r\n") for line in io.TextIOWrapper(raw_in, encoding="utf-8", errors="strict"))
    chunk = args.batch_size or 256
    with contextlib.ExitStack() as stack:  # -o FILE appears whole, once every line is translated
        out = stack.enter_context(atomic_open(args.output, text=True)) if args.output else sys.stdout
        for translation in translator.translate_stream(_checked_utf8(lines), config, chunk_lines=chunk):
            if args.n_best > 1:
                for hyp in translation.hypotheses:  # reranked: the second opinions' scores too, in rank order
                    opinions = "".join(f"{value:.4f}\t" for value in (hyp.source_log_prob, hyp.right_to_left_log_prob)
                                       if value is not None)
                    out.write(f"{hyp.score:.4f}\t{opinions}{hyp.text}\n")
                out.write("\n")
            else:
                out.write(translation.text + "\n")
            out.flush()


def _checked_utf8(lines):
    from model.errors import InputError

    number = 0
    try:
        for number, line in enumerate(lines, 1):  # noqa: B007
            yield line
    except UnicodeDecodeError as exc:
        raise InputError(f"input is not valid UTF-8 (after line {number}): {exc.reason}") from None


def cmd_evaluate(args: argparse.Namespace) -> None:
    from model.errors import InputError
    from training.evaluate import evaluate, resolve_testset

    translator = _translator(args)
    if args.testset:
        src, ref = resolve_testset(args.testset, translator.bundle.source_lang, translator.bundle.target_lang,
                                   args.data_dir)
    elif args.src and args.ref:
        src, ref = Path(args.src), Path(args.ref)
    else:
        raise InputError("give --src and --ref, or --testset multi30k:test_2016_flickr")
    result = evaluate(translator, src, ref, _search_config(translator, args), args.lowercase, args.tokenize)
    print(f"BLEU = {result['bleu']:.2f}  {result['bleu_signature']}")
    print(f"chrF = {result['chrf']:.2f}  {result['chrf_signature']}")
    print(f"{result['sentences']} sentences in {result['wall_time_s']} s ({result['sentences_per_s']} sentences/s)")
    if args.json:
        atomic_write(args.json, json.dumps(result, indent=2, ensure_ascii=False) + "\n")


def cmd_tune(args: argparse.Namespace) -> None:
    from training.data import read_lines
    from training.evaluate import resolve_testset
    from training.tune import DevSet, check_dev_names, format_tuning, tune_decoding, write_decoding

    check_dev_names(args.testset)
    translator = _translator(args)
    bundle = translator.bundle
    dev_sets = []
    for name in args.testset:
        src, ref = resolve_testset(name, bundle.source_lang, bundle.target_lang, args.data_dir)
        dev_sets.append(DevSet(name, read_lines(src), read_lines(ref)))
    reverse = args.reverse_weights if translator.reverse is not None else [0.0]
    right_to_left = args.right_to_left_weights if translator.right_to_left is not None else [0.0]
    result = tune_decoding(translator, dev_sets, args.beam_sizes, args.length_penalties, reverse, right_to_left)
    print(format_tuning(result))
    if not args.dry_run:
        write_decoding(Path(args.model), result)
        print(f"written to {Path(args.model) / 'config.json'} (decoding)")


def cmd_shortlist(args: argparse.Namespace) -> None:
    import torch

    from model.checkpoint import load_model_folder
    from model.errors import InputError
    from training.data import read_lines
    from training.evaluate import resolve_testset
    from training.shortlist import ShortlistSettings, count_corpora, coverage, training_corpora, write_shortlist

    bundle = load_model_folder(args.model)
    specs = args.corpus or training_corpora(bundle)
    if not specs:
        raise InputError(f"{args.model}/config.json names no training corpora: give --corpus")
    counts = count_corpora(bundle, specs, args.data_dir)
    sizes = {"frequent": args.frequent, "per_source": args.per_source}
    shortlist = counts.shortlist(ShortlistSettings(**{k: v for k, v in sizes.items() if v is not None}))
    path = write_shortlist(args.model, shortlist)
    print(f"wrote {path}: the {shortlist.sizes[0]} most frequent target pieces and {shortlist.sizes[1]} per source "
          f"piece, from {counts.pairs:,} sentence pairs ({', '.join(specs)})")
    report = {"file": path.name, "frequent": shortlist.sizes[0], "per_source": shortlist.sizes[1],
              "pairs": counts.pairs, "corpora": specs, "vocab_size": bundle.tgt_tokenizer.vocab_size, "testsets": {}}
    for name in args.testset:
        src, ref = resolve_testset(name, bundle.source_lang, bundle.target_lang, args.data_dir)
        sources, references = read_lines(src), read_lines(ref)
        sizes = [len(shortlist.vocabulary(torch.tensor([ids or [0]])))
                 for ids in bundle.src_tokenizer.encode(sources)]
        held, mean = coverage(bundle, shortlist, sources, references), sum(sizes) / len(sizes)
        report["testsets"][name] = {"coverage": round(held, 4), "mean_pieces": round(mean)}
        print(f"{name}: {held:.2%} of the reference pieces in the shortlist of their sentence (mean {mean:.0f} of "
              f"{report['vocab_size']} pieces); BLEU with and without: rnnmt evaluate --shortlist / --no-shortlist")
    if args.json:
        atomic_write(args.json, json.dumps(report, indent=2) + "\n")


def cmd_average(args: argparse.Namespace) -> None:
    from training.average import average_folders

    out = average_folders([Path(folder) for folder in args.models], Path(args.out), args.checkpoints)
    print(f"averaged {'the kept checkpoints of ' if args.checkpoints else ''}{len(args.models)} "
          f"{'runs' if args.checkpoints else 'models'} into {out}")


def cmd_bench(args: argparse.Namespace) -> None:
    from model.errors import InputError
    from training.bench import format_report, run_bench
    from training.data import read_lines
    from training.evaluate import resolve_testset

    translator = _translator(args, precision="fp32")  # run_bench switches kernels per precision
    translator.defaults = _search_config(translator, args)  # the model's settings, changed by the options given
    targets = None
    if args.src:
        sources = read_lines(args.src)
        targets = read_lines(args.ref) if args.ref else None
    else:
        src, ref = resolve_testset("multi30k:val", translator.bundle.source_lang, translator.bundle.target_lang,
                                   args.data_dir)
        sources, targets = read_lines(src), read_lines(ref)
    sources = [s for s in sources if s.strip()]
    if not sources:
        raise InputError("the benchmark needs at least one non-empty source sentence")
    report = run_bench(translator, sources, targets, args.threads, args.max_sentences, args.train_steps,
                       precisions=tuple(p.strip() for p in args.precision.split(",") if p.strip()) or ("fp32",),
                       limit_rounds=args.limit_rounds)
    print(format_report(report))
    if args.json:
        atomic_write(args.json, json.dumps(report, indent=2) + "\n")


def cmd_plot_attention(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    translator = _translator(args)
    config = _search_config(translator, args, return_attention=True)
    result = translator.translate([args.text], config)[0]
    hyp = result.hypotheses[0]
    if hyp.attention is None:
        from model.errors import InputError

        raise InputError("this model has no attention (attention: none) to plot")
    src_labels, tgt_labels = [*result.src_pieces, "</s>"], [*hyp.tgt_pieces, "</s>"]
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(src_labels) + 2), max(3, 0.4 * len(tgt_labels) + 1.5)))
    image = ax.imshow(hyp.attention, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_labels)), src_labels, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt_labels)), tgt_labels)
    ax.set_xlabel("source pieces")
    ax.set_ylabel("target pieces")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    with atomic_open(args.output) as handle:  # the format from the name's extension, as savefig(path) does
        fig.savefig(handle, dpi=120, format=Path(args.output).suffix.lstrip(".") or None)
    print(f"{hyp.text}\nwrote {args.output}")


def _check_settings() -> Settings:
    """Read the RNNMT_* settings once here, so that a bad value is one line and exit 2, not a worker traceback."""
    from pydantic import ValidationError

    from app.settings import Settings
    from model.cpu_features import cpu_features
    from model.errors import ConfigError

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"RNNMT_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"bad service setting: {problems}") from None
    if settings.precision != "auto" and settings.precision not in cpu_features().precisions():
        raise ConfigError(f"RNNMT_PRECISION={settings.precision}: this CPU cannot decode in it "
                          f"({cpu_features().describe()}); it supports {', '.join(cpu_features().precisions())}")
    return settings


def _stop(sig: int, frame: FrameType | None) -> None:
    """SIGTERM outside uvicorn's own handler: before it starts, or re-raised by it after a graceful shutdown."""
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> None:
    import os
    import shutil
    import signal
    import tempfile

    import uvicorn

    from model.errors import ConfigError

    log = logging.getLogger(__name__)

    # The app factory reads RNNMT_* settings (in every worker process), so the options travel as env variables.
    if args.models_dir:
        os.environ["RNNMT_MODELS_DIR"] = str(Path(args.models_dir).resolve())
    if args.device:
        os.environ["RNNMT_DEVICE"] = args.device
    if args.threads is not None:
        os.environ["RNNMT_THREADS"] = str(args.threads)
    if args.precision:
        os.environ["RNNMT_PRECISION"] = args.precision
    settings = _check_settings()
    # A stop request ends in exit 0: uvicorn drains (app/shutdown.py), then raises SIGTERM again for its caller.
    signal.signal(signal.SIGTERM, _stop)
    # Several workers add up their metrics through files in one folder (prometheus_client's multiprocess mode),
    # named before they start: $PROMETHEUS_MULTIPROC_DIR, or else a fresh folder removed at exit.
    metrics_dir = None
    if args.workers > 1:
        given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not given:
            metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rnnmt-metrics-")
        elif not Path(given).is_dir():
            raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={given} is not a folder")
        elif any(Path(given).iterdir()):
            log.warning("PROMETHEUS_MULTIPROC_DIR=%s is not empty: its counters go on from the earlier run's", given)
        log.info("%d workers add up their metrics through %s", args.workers, os.environ["PROMETHEUS_MULTIPROC_DIR"])
    try:
        uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_level=args.log_level, access_log=not args.no_access_log,
                    timeout_graceful_shutdown=settings.shutdown_grace_s)
    finally:
        if metrics_dir:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            shutil.rmtree(metrics_dir, ignore_errors=True)


def cmd_bench_serve(args: argparse.Namespace) -> None:
    from app.bench_serve import bench_fairness, bench_serve, format_fairness, format_table
    from model.errors import InputError

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would slow the load generator

    models_dir = Path(args.models_dir)
    if not models_dir.exists():
        raise InputError(f"models folder not found: {models_dir}")
    sentences = None
    if args.sentences:
        lines = Path(args.sentences).read_text(encoding="utf-8").splitlines()
        sentences = [line.strip() for line in lines if line.strip()] or None
    batching = {"RNNMT_MAX_BATCH_SENTENCES": str(args.max_batch_sentences), "RNNMT_MAX_WAIT_MS": str(args.max_wait_ms),
                "RNNMT_REGROUP_MS": str(args.regroup_ms)}
    if args.soak is not None:
        from app.bench_soak import bench_soak, format_soak

        report = bench_soak(models_dir.resolve(), minutes=args.soak, load=args.load, deadline_s=args.deadline_s,
                            clients=args.clients, capacity_s=args.capacity_s, beam_size=args.beam_size,
                            probe_interval_s=args.probe_interval_s, sentences=sentences, source=args.source,
                            target=args.target, server_env=batching, threads=args.threads)
        print(format_soak(report))
    elif args.fairness:
        report = bench_fairness(models_dir.resolve(), beam_size=args.beam_size, single_requests=args.single_requests,
                                flood_sentences=args.flood_sentences, flood_batch=args.flood_batch,
                                flood_connections=args.flood_connections, sentences=sentences, source=args.source,
                                target=args.target, batching_env=batching, threads=args.threads)
        print(format_fairness(report))
    else:
        report = bench_serve(models_dir.resolve(), clients=args.clients, requests=args.requests,
                             beam_size=args.beam_size, sentences=sentences, source=args.source, target=args.target,
                             batching_env=batching, threads=args.threads)
        print(format_table(report))
    if args.json:
        atomic_write(args.json, json.dumps(report, indent=2) + "\n")


def cmd_keys(args: argparse.Namespace) -> None:
    import time

    from app.keys import KeyStore, Limits, default_keys_db

    store = KeyStore(Path(args.db) if args.db else default_keys_db())
    if args.keys_command == "list":
        records = store.list()
        print(f"{len(records)} key(s) in {store.path}")
        for r in records:
            state = "active" if r.active else "revoked " + time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.revoked_at))
            limits = ", ".join(f"{k.replace('_', '-')}={v}" for k, v in vars(r.limits).items() if v) or "unlimited"
            print(f"{r.name}\t{r.key_start}...\t{state}\t{limits}")
        return
    if args.keys_command == "revoke":
        store.revoke(args.name)
        print(f"revoked {args.name!r} in {store.path}; the service refuses it from the next request")
        return
    limits = Limits(args.requests_per_minute, args.chars_per_minute, args.chars_per_day)
    if args.keys_command == "set-limits":
        store.set_limits(args.name, limits)
        print(f"limits of {args.name!r} set in {store.path}")
        return
    key = store.add(args.name, limits)
    print(f"added {args.name!r} to {store.path}; the key is shown once, below:", file=sys.stderr)
    print(key)


def cmd_translate_file(args: argparse.Namespace) -> None:
    """Translate one document (.txt, .srt, .html, .md, .docx) in-process, as POST /translate_file does."""
    import asyncio

    from tqdm import tqdm

    from app.documents import Translators, open_document, translate_units
    from app.errors import ApiError
    from app.metrics import Metrics
    from app.protect import read_glossary
    from app.registry import ModelRegistry
    from app.schemas import DecodeOptions
    from app.service import Content, TranslationService, check_detected
    from app.settings import Settings
    from model.errors import InputError

    source_path, out_path = Path(args.input), Path(args.output)
    glossary = read_glossary(Path(args.glossary)) if args.glossary else {}
    try:
        data = source_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source_path}: {exc.strerror or exc}") from None
    try:
        document = open_document(data, source_path.name)  # no size limits on the command line
    except ApiError as exc:
        raise InputError(exc.message) from None
    _check_settings()
    overrides = {"request_timeout_s": 24 * 3600.0}  # a long document on a slow CPU is not a stuck request
    if args.models_dir:
        overrides["models_dir"] = Path(args.models_dir)
    if args.device:
        overrides["device"] = args.device
    settings = Settings(**overrides)
    metrics = Metrics()
    registry = ModelRegistry(settings, metrics)
    registry.load()
    service = TranslationService(registry, settings, metrics)

    async def translate() -> bytes:
        source = args.source
        if source == "auto" and document.units:
            sample = document.sample()
            source = check_detected([sample], await service.detect([sample]))[0].language
            print(f"detected language: {source}", file=sys.stderr)
        route = registry.route(source, args.target, detected=args.source == "auto")
        content = Content(glossary=glossary, do_not_translate=args.do_not_translate)
        translators = Translators.from_service(service, route, DecodeOptions(beam_size=args.beam_size),
                                               content=content)
        with tqdm(total=len(document.units), unit="unit", desc=source_path.name, disable=None) as bar:
            translations = await translate_units(document.units, translators, bar.update)
        return document.render(translations)

    try:
        translated = asyncio.run(translate())
    except ApiError as exc:
        raise InputError(exc.message) from None
    finally:
        registry.close()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, translated)
    print(f"wrote {out_path}: {len(document.units)} units, {document.chars} characters translated")


def _add_decode_options(parser: argparse.ArgumentParser, precision: bool = True) -> None:
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--beam-size", type=_positive_int, default=None, help="1 = greedy (default: the model's)")
    parser.add_argument("--n-best", type=_positive_int, default=1)
    parser.add_argument("--length-penalty", type=float, default=None, help="GNMT alpha (0 = raw log-prob)")
    _add_reranker_options(parser)
    parser.add_argument("--shortlist", action=argparse.BooleanOptionalAction, default=None,
                        help="search only the pieces of the model's lexical shortlist (shortlist.safetensors; faster, "
                             "scores renormalized over it; default: the model's setting)")
    parser.add_argument("--exact-stop", action="store_true",
                        help="beam search goes on until no alive beam can win (slower; default: stop at "
                             "beam-size finished hypotheses, as fairseq)")
    parser.add_argument("--batch-tokens", type=_positive_int, default=2000, help="source tokens per batch")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    if precision:
        parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8", "auto"],
                            help="what the decoder computes in (bf16 needs a CPU with native bf16; auto: the fastest "
                                 "this CPU supports)")


def _add_reranker_options(parser: argparse.ArgumentParser, weight: bool = True) -> None:
    parser.add_argument("--reverse-model", default=None, metavar="DIR",
                        help="the model of the opposite direction that reranks beams (default: the folder beside "
                             "--model that translates the other way; 'none': no reranking with it)")
    parser.add_argument("--right-to-left-model", default=None, metavar="DIR",
                        help="the right-to-left model of this direction that reranks beams (default: the one beside "
                             "--model; 'none': no reranking with it)")
    if weight:
        parser.add_argument("--reverse-weight", type=float, default=None,
                            help="weight of the reverse model's score in reranking (0 = off; default: the model's)")
        parser.add_argument("--right-to-left-weight", type=float, default=None,
                            help="weight of the right-to-left model's score in reranking (0 = off; default: the "
                                 "model's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnmt", description="RNN encoder-decoder machine translation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="clean parallel text and train SentencePiece")
    p.add_argument("--config", help="prepare what this training config names")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--dataset", default="multi30k", choices=["multi30k", "ding"],
                   help="a built-in corpus: Multi30k, or the Ding dictionary (Debian trans-de-en; de-en or en-de)")
    p.add_argument("--pair", default="en-de")
    p.add_argument("--data-dir", default=None, help="Multi30k folder (default: $RNNMT_DATA_DIR or ../shared/...)")
    p.add_argument("--download", action="append", nargs="?", const="multi30k", metavar="NAME[:WEIGHT]",
                   help="alone: fetch Multi30k from its public repository if missing; with a name (tatoeba, "
                        "europarl, news-commentary): download that OPUS corpus for --pair into the cache (online) "
                        "and train on it too; repeatable")
    p.add_argument("--corpus", action="append", metavar="SPEC[:WEIGHT]",
                   help="a training corpus: file.tsv, memory.tmx, Moses prefix, a.src,a.tgt, OPUS zip (gz/xz/bz2/zst "
                        "ok), or multi30k / ding...; the weight repeats it (2) or samples it (0.5); repeatable")
    p.add_argument("--valid-corpus", action="append", metavar="SPEC",
                   help="a validation corpus (same forms); repeatable; default with --corpus: multi30k")
    p.add_argument("--src", help="training source file (plain or .gz)")
    p.add_argument("--tgt", help="training target file")
    p.add_argument("--valid-src")
    p.add_argument("--valid-tgt")
    p.add_argument("--vocab-size", type=_positive_int, default=8000)
    p.add_argument("--separate-vocab", action="store_true")
    p.add_argument("--out", default="runs/prepared/multi30k-en-de")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="run folder; becomes the model folder")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("translate", help="translate lines from stdin (or -i) to stdout (or -o)")
    _add_decode_options(p)
    p.add_argument("--batch-size", type=_positive_int, default=None, help="sentences per batch (1 = one at a time)")
    p.add_argument("-i", "--input")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("translate-file", help="translate a document (.txt .srt .html .htm .md .docx), keeping its "
                       "layout and formatting")
    p.add_argument("input", help="the document")
    p.add_argument("output", help="where the translation goes (written whole, or not at all)")
    p.add_argument("--source", required=True, help="source language code, or auto")
    p.add_argument("--target", required=True, help="target language code")
    p.add_argument("--models-dir", default=None, help="folder of model folders (default: $RNNMT_MODELS_DIR "
                   "or released-models/)")
    p.add_argument("--beam-size", type=_positive_int, default=None, help="1 = greedy (default: the model's)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--glossary", default=None, help="TSV file, 'source term<TAB>target term' a line (with the "
                   "pair's file in $RNNMT_GLOSSARY_DIR)")
    p.add_argument("--do-not-translate", action="append", default=[], metavar="TERM",
                   help="a term kept as it is (repeatable; URLs, numbers, {name}, %%s... always are)")
    p.set_defaults(func=cmd_translate_file)

    p = sub.add_parser("evaluate", help="BLEU and chrF with sacrebleu")
    _add_decode_options(p)
    p.add_argument("--src")
    p.add_argument("--ref")
    p.add_argument("--testset", help="e.g. multi30k:test_2016_flickr or multi30k:val")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--tokenize", default=None, help="sacrebleu tokenizer (default 13a; 'intl', 'none', ...)")
    p.add_argument("--json", type=_report_path)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tune", help="choose the model's beam size and length penalty on dev sets")
    p.add_argument("--model", required=True)
    p.add_argument("--testset", action="append", default=[], help="a dev set, repeatable: multi30k:val, ding:dev")
    p.add_argument("--beam-sizes", type=_int_list, default=[3, 4, 5, 6], metavar="LIST")
    p.add_argument("--length-penalties", type=_float_list, default=[0.6, 0.8, 1.0, 1.2, 1.4], metavar="LIST")
    p.add_argument("--reverse-weights", type=_float_list, default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0], metavar="LIST",
                   help="reranking weights of the reverse model (model/rerank.py), tried on every beam; "
                        "only 0 when no reverse model is found")
    p.add_argument("--right-to-left-weights", type=_float_list, default=[0.0, 0.5, 1.0, 1.5, 2.0], metavar="LIST",
                   help="reranking weights of the right-to-left model, tried with every reverse weight; only 0 "
                        "when no right-to-left model is found")
    _add_reranker_options(p, weight=False)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8", "auto"])
    p.add_argument("--batch-tokens", type=_positive_int, default=4000)
    p.add_argument("--dry-run", action="store_true", help="print the grid, leave config.json as it is")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("shortlist", help="build a model's lexical shortlist (shortlist.safetensors) from parallel text")
    p.add_argument("--model", required=True)
    p.add_argument("--corpus", action="append", default=[], metavar="SPEC",
                   help="repeatable, as for prepare (multi30k, ding-sentences:3, a TSV/TMX file); default: the "
                        "corpora the model trained on (its config.json)")
    p.add_argument("--frequent", type=_positive_int, default=None,
                   help="the most frequent target pieces every shortlist holds (default 500)")
    p.add_argument("--per-source", type=_positive_int, default=None,
                   help="candidate target pieces per source piece (default 50)")
    p.add_argument("--testset", action="append", default=[], help="report coverage on it (a dev set), repeatable")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", type=_report_path,
                   help="also write the report (sizes, corpora, coverage) here, for the model card")
    p.set_defaults(func=cmd_shortlist)

    p = sub.add_parser("average", help="average the weights of model folders (same architecture and tokenizer)")
    p.add_argument("models", nargs="+", metavar="MODEL_DIR")
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoints", action="store_true",
                   help="average every best checkpoint the runs kept (checkpoints/best-step*), not their final weights")
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("bench", help="decode/training throughput, latency, memory, fraction of the matmul limit")
    _add_decode_options(p, precision=False)
    p.add_argument("--src", help="source sentences (default: Multi30k val of the model's pair)")
    p.add_argument("--ref", help="targets for the training-throughput part")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=_positive_int, default=2)
    p.add_argument("--max-sentences", type=_positive_int, default=512)
    p.add_argument("--train-steps", type=_positive_int, default=30)
    p.add_argument("--limit-rounds", type=_positive_int, default=3, help="rounds of the matmul-limit measurement")
    p.add_argument("--precision", default="fp32", metavar="LIST",
                   help="decoding precisions to compare, comma-separated: fp32,int8,bf16,auto (default fp32)")
    p.add_argument("--json", type=_report_path)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("plot-attention", help="attention heatmap of one translation (PNG, matplotlib)")
    _add_decode_options(p)
    p.add_argument("--text", required=True)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_plot_attention)

    p = sub.add_parser("serve", help="run the HTTP service (FastAPI + uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_positive_int, default=8000)
    p.add_argument("--workers", type=_positive_int, default=1, help="processes (each loads every model; /metrics "
                   "adds up all of them, through $PROMETHEUS_MULTIPROC_DIR or else a temporary folder)")
    p.add_argument("--models-dir", default=None, help="folder of model folders (default: $RNNMT_MODELS_DIR "
                   "or released-models/)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch threads per process (0 = torch's default)")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "int8", "auto"],
                   help="what the decoder computes in (default: $RNNMT_PRECISION or fp32)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--no-access-log", action="store_true", help="do not log every request")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench-serve", help="load-test the HTTP service with micro-batching on and off")
    p.add_argument("--models-dir", "--model-dir", dest="models_dir", required=True,
                   help="a model folder, or a folder of model folders")
    p.add_argument("--clients", type=_positive_int, default=32, help="concurrent clients")
    p.add_argument("--requests", type=_positive_int, default=20, help="requests per client (one sentence each)")
    p.add_argument("--beam-size", type=_positive_int, default=5)
    p.add_argument("--source", default=None, help="language pair to load-test (default: the first served)")
    p.add_argument("--target", default=None)
    p.add_argument("--sentences", default=None, help="file of source sentences, one a line (default: built-in)")
    p.add_argument("--max-batch-sentences", type=_positive_int, default=64, help="for the batching run")
    p.add_argument("--max-wait-ms", type=_non_negative_float, default=5.0, help="for the batching run")
    p.add_argument("--regroup-ms", type=_non_negative_float, default=50.0, help="for the batching run")
    p.add_argument("--threads", type=int, default=0, help="torch threads of the server (0 = torch's default)")
    p.add_argument("--json", "--json-out", dest="json", type=_report_path, help="write the report here (JSON)")
    p.add_argument("--fairness", action="store_true", help="instead: latency of a one-sentence client (API key "
                   "'single') idle and while another key ('flood') sends many sentences")
    p.add_argument("--single-requests", type=_positive_int, default=40, help="--fairness: requests of 'single' "
                   "idle, and at least as many under flood")
    p.add_argument("--flood-sentences", type=_positive_int, default=2000, help="--fairness: sentences 'flood' sends")
    p.add_argument("--flood-batch", type=_positive_int, default=8, help="--fairness: sentences per 'flood' request")
    p.add_argument("--flood-connections", type=_positive_int, default=8,
                   help="--fairness: concurrent connections of 'flood'")
    p.add_argument("--soak", type=_positive_float, default=None, metavar="MINUTES", help="instead: measure the "
                   "capacity (closed loop, --clients), then open-loop Poisson load at --load x capacity for MINUTES "
                   "with a /health prober; status codes, deadlines, Retry-After against the real drain, RSS")
    p.add_argument("--load", type=_load_factor, default=2.0, help="--soak: offered load, e.g. 2x the capacity")
    p.add_argument("--deadline-s", type=_positive_float, default=10.0,
                   help="--soak: the server's request deadline (RNNMT_REQUEST_TIMEOUT_S)")
    p.add_argument("--capacity-s", type=_positive_float, default=20.0,
                   help="--soak: seconds of closed-loop load that measure the capacity (and warm up)")
    p.add_argument("--probe-interval-s", type=_positive_float, default=0.1, help="--soak: GET /health this often")
    p.set_defaults(func=cmd_bench_serve)

    p = sub.add_parser("keys", help="API keys of the service: add, list, revoke, set-limits")
    keys = p.add_subparsers(dest="keys_command", required=True)
    for name, text in [("add", "make a key (printed once, alone on the last line)"), ("list", "list the keys"),
                       ("revoke", "revoke a key by name"), ("set-limits", "replace a key's limits")]:
        k = keys.add_parser(name, help=text)
        k.add_argument("--db", default=None, help="keys file (default: $RNNMT_KEYS_DB or "
                       "~/.local/share/rnnmt/keys.sqlite)")
        if name == "list":
            continue
        if name == "add":
            k.add_argument("--name", required=True, help="who the key is for (shown in logs and metrics)")
        else:
            k.add_argument("name")
        if name != "revoke":
            for flag in ("--requests-per-minute", "--chars-per-minute", "--chars-per-day"):
                k.add_argument(flag, type=_positive_int, default=None, help="omit for no limit")
    p.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app.runtime import tune_allocator
    from model.errors import RnnmtError

    tune_allocator()
    try:
        args.func(args)
    except RnnmtError as exc:
        print(f"rnnmt: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("rnnmt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
