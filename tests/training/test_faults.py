"""Training under faults, each against a real `rnnmt train` process: SIGKILL at 20 moments (during steps,
validations, checkpoint writes and the export), resumed each time, ends with the weights of a run never
interrupted, bit for bit; a full disk during a checkpoint or the export gives one clear line, exit 2, and leaves
the previous checkpoint and model folder as they were.

The killed runs are forked from a server process that has imported torch once (multiprocessing's forkserver), so
twenty restarts cost no imports; RNNMT_TEST_SLOW_WRITE holds every write half done, so kills land inside writes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

from model.checkpoint import load_model_folder
from tests.conftest import synthetic_corpus

ROOT = Path(__file__).resolve().parents[2]
STEPS, VALID_EVERY = 24, 4
SLOW_WRITE_S = 0.1
KILLS = 20


def overrides(root: Path) -> list[str]:
    """A tiny run: 24 steps, a validation (and checkpoint) every 4, dropout so that resuming must restore the RNG."""
    train_src, train_tgt = synthetic_corpus(root / "train", 300, seed=1)
    valid_src, valid_tgt = synthetic_corpus(root / "valid", 12, seed=2)
    return [
        f"data.train_src={train_src}", f"data.train_tgt={train_tgt}", f"data.valid_src={valid_src}",
        f"data.valid_tgt={valid_tgt}", "data.dataset=null", f"data.prepared_dir={root / 'prepared'}",
        "data.vocab_size=40", "model.emb_size=16", "model.encoder_hidden=16", "model.decoder_hidden=24",
        "model.attention_size=16", "model.readout_size=16", "model.dropout=0.2", "model.emb_dropout=0.1",
        "train.batch_tokens=300", f"train.max_steps={STEPS}", f"train.valid_every={VALID_EVERY}", "train.lr=0.01",
        "train.threads=1", "train.keep_best=2", "train.average_best=2", "decode.max_len_b=3",
    ]


def train_argv(root: Path, out: Path, *extra: str) -> list[str]:
    config = root / "empty.yaml"
    config.write_text("{}\n")
    return ["train", "--config", str(config), "--out", str(out), "--device", "cpu",
            *[arg for text in overrides(root) for arg in ("--set", text)], *extra]


def _run_cli(argv: list[str], log: str, slow_write: bool) -> None:
    """The child: `rnnmt train ...` with its output in `log` (runs in a process forked from the forkserver)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if slow_write:
        os.environ["RNNMT_TEST_SLOW_WRITE"] = str(SLOW_WRITE_S)
    from app.cli import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@pytest.fixture(scope="module")
def forked() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["app.cli", "training.trainer", __name__])
    return context


def start(forked, argv: list[str], log: Path, slow_write: bool = False) -> multiprocessing.Process:
    process = forked.Process(target=_run_cli, args=(argv, str(log), slow_write))
    process.start()
    return process


def finish(process: multiprocessing.Process, log: Path) -> None:
    process.join(timeout=300)
    assert process.exitcode == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def reference(forked, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run never interrupted, in `root / "reference"`; it also prepares the data that every run here shares."""
    root = tmp_path_factory.mktemp("faults")
    finish(start(forked, train_argv(root, root / "reference"), root / "reference.log"), root / "reference.log")
    return root


def hidden(*folders: Path) -> set[Path]:
    return {p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.name.startswith(".")}


def checkpoint_step(run: Path) -> int:
    """Read the checkpoint the way --resume does (every tensor, the progress JSON, the kept best weights)."""
    path = run / "checkpoints" / "last.safetensors"
    load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        progress = json.loads(handle.metadata()["progress"])
    for kept in progress["kept"]:
        load_file(str(run / "checkpoints" / kept["file"]))
    return progress["step"]


def assert_same_weights(run: Path, reference: Path) -> None:
    for name in ("model.safetensors", "checkpoints/last.safetensors"):
        ours, theirs = load_file(str(run / name)), load_file(str(reference / name))
        assert ours.keys() == theirs.keys() and theirs  # weights, optimizer state and RNG
        for key in theirs:
            assert ours[key].equal(theirs[key]), (name, key)


def bar_step(log: Path, offset: int) -> int:
    """The last step the child's progress bar showed in its log after `offset` (-1: none yet)."""
    with open(log, "rb") as handle:
        handle.seek(offset)
        return max(map(int, re.findall(rb"(\d+)/%d \[" % STEPS, handle.read())), default=-1)


def kill_moment(process, rng: random.Random, run: Path, before: set[Path], log: Path, offset: int,
                step: int) -> None:
    """Wait for one of two kinds of moment, both tied to the run's progress so that twenty spread over all of it:
    the bar passing a random step just after the checkpoint's `step`, then a random fraction of a second (steps,
    validations); or inside the n-th write the child starts (temporaries not in `before`)."""
    deadline = time.monotonic() + 120
    if rng.random() < 0.5:
        target = min(step + rng.randint(1, VALID_EVERY + 2), STEPS)  # at the end: during the export
        while process.is_alive() and bar_step(log, offset) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        process.join(rng.uniform(0.0, 0.3))
        return
    writes = rng.randrange(3)
    while process.is_alive() and time.monotonic() < deadline:
        fresh = hidden(run, run / "checkpoints") - before
        if fresh and writes == 0:
            time.sleep(rng.uniform(0.0, SLOW_WRITE_S / 2))
            return
        if fresh:
            writes -= 1
            before = before | fresh
        time.sleep(0.002)


def test_sigkill_at_20_moments_then_resume_gives_the_uninterrupted_weights(forked, reference) -> None:
    root = reference
    run, log = root / "killed", root / "killed.log"
    rng = random.Random(19)
    step, inside_writes, kills = -1, 0, 0
    for _ in range(3 * KILLS):
        if kills == KILLS:
            break
        before = hidden(run, run / "checkpoints")
        offset = log.stat().st_size if log.exists() else 0
        process = start(forked, train_argv(root, run, "--resume"), log, slow_write=True)
        kill_moment(process, rng, run, before, log, offset, max(step, 0))
        process.kill()
        process.join()
        assert process.exitcode in (0, -signal.SIGKILL), log.read_text()[-3000:]  # no resume ever failed
        kills += process.exitcode == -signal.SIGKILL  # 0: it finished first (the run was done but for its export)
        inside_writes += bool(hidden(run, run / "checkpoints") - before)
        if step >= 0 or (run / "checkpoints" / "last.safetensors").exists():
            step, previous = checkpoint_step(run), step  # never missing once written, never corrupt
            assert step >= previous
        if (run / "config.json").exists():
            load_model_folder(run)
    assert kills == KILLS
    finish(start(forked, train_argv(root, run, "--resume"), log), log)
    assert inside_writes > 0  # the test's aim: some kills landed inside a write
    assert_same_weights(run, root / "reference")
    assert hidden(run, run / "checkpoints") == set()  # every temporary the kills left was cleaned up


def rlimit_env(limit: int) -> Callable[[], None]:
    """For preexec_fn: files may not grow past `limit` bytes."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limited


class SmallDisk:
    """A tmpfs holding a copy of a run folder, with `room` bytes free (needs root; skipped where mount fails)."""

    def __init__(self, point: Path, run: Path, room: int) -> None:
        self.point = point
        point.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(point)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        shutil.copytree(run, point / "run")
        stats = os.statvfs(point)
        used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
        subprocess.run(["mount", "-o", f"remount,size={used + room}", str(point)], check=True)

    def __enter__(self) -> Path:
        return self.point / "run"

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.point)], check=False)


def rnnmt(argv: list[str], preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, preexec_fn=preexec)


def assert_clear_error(code: int | None, stderr: str, run: Path) -> None:
    """Exit 2 and, last, one line naming the file in `run` that could not be written and why."""
    assert code == 2 and "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"rnnmt: error: cannot write {run}/") and \
        last.endswith(("File too large", "No space left on device")), last


@pytest.fixture(scope="module")
def half_run(forked, reference) -> Path:
    """The same run stopped halfway (a checkpoint at step 12, a model folder exported from it)."""
    root = reference
    half, log = root / "half", root / "half.log"
    finish(start(forked, train_argv(root, half, "--max-steps", str(STEPS // 2)), log), log)
    return half


def fill_disk(forked, root: Path, run: Path, disk: str, room: int) -> None:
    """`rnnmt train --resume` on `run` with a full disk: one clear line and exit 2 (tmpfs: a copy of `run` on a
    tmpfs with `room` bytes free, copied back after; rlimit: RLIMIT_FSIZE = room, through the real entry point)."""
    if disk == "rlimit":
        done = rnnmt(train_argv(root, run, "--resume"), preexec=rlimit_env(room))
        assert_clear_error(done.returncode, done.stderr, run)
        return
    with SmallDisk(run.parent / "disk", run, room) as small_run:
        log = run.parent / "small.log"
        process = start(forked, train_argv(root, small_run, "--resume"), log)
        process.join(timeout=300)
        assert_clear_error(process.exitcode, log.read_text(), small_run)
        shutil.rmtree(run)
        shutil.copytree(small_run, run)  # what the full disk held, for the checks that follow


@pytest.mark.parametrize("disk", ["rlimit", "tmpfs"])
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(forked, reference, half_run: Path, tmp_path: Path,
                                                              disk: str) -> None:
    root = reference
    run = tmp_path / "run"
    shutil.copytree(half_run, run)
    checkpoint = (run / "checkpoints" / "last.safetensors").stat().st_size
    room = checkpoint - 1 if disk == "rlimit" else checkpoint // 2  # best weights fit, the next checkpoint not
    fill_disk(forked, root, run, disk, room)
    assert checkpoint_step(run) == STEPS // 2 and hidden(run / "checkpoints") == set()
    log = tmp_path / "run.log"
    finish(start(forked, train_argv(root, run, "--resume"), log), log)  # room again: it carries on, exactly
    assert_same_weights(run, root / "reference")


@pytest.mark.parametrize("disk", ["rlimit", "tmpfs"])
def test_disk_full_during_the_export_keeps_the_previous_model(forked, reference, tmp_path: Path, disk: str) -> None:
    root = reference
    run = tmp_path / "run"
    shutil.copytree(root / "reference", run)  # a finished run: --resume only exports again
    fill_disk(forked, root, run, disk, room=4096)
    assert checkpoint_step(run) == STEPS and hidden(run, run / "checkpoints") == set()
    load_model_folder(run)
    assert_same_weights(run, root / "reference")
