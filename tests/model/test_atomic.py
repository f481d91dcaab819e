"""The atomic writer (model/atomic.py): a reader, or a process restarted after SIGKILL, sees the old file or folder
or the new one, never half of one; a full disk raises WriteError naming the target and keeps the old content."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model import atomic
from model.atomic import atomic_write, publish_folder, remove_leftovers, staged_folder
from model.errors import WriteError

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = b"o" * 300_000, b"n" * 300_000

# Rewrites the target with OLD and NEW in turn, forever; RNNMT_TEST_SLOW_WRITE holds each write half done.
WRITER = """
import sys
from model.atomic import atomic_write
target = sys.argv[1]
while True:
    for data in (b"n" * 300_000, b"o" * 300_000):
        atomic_write(target, data)
"""


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the child never got there"
        time.sleep(0.002)


def test_a_killed_writer_never_leaves_a_half_written_target(tmp_path: Path) -> None:
    target = tmp_path / "last.safetensors"
    atomic_write(target, OLD)
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT,
                             env={**os.environ, "RNNMT_TEST_SLOW_WRITE": "0.05"})
    try:
        seen = set()
        for _ in range(3):  # readers during the writes: always one whole version
            wait_for(lambda: hidden(tmp_path) != [])
            seen.add(target.read_bytes())
            time.sleep(0.07)
            seen.add(target.read_bytes())
        assert seen <= {OLD, NEW}
        wait_for(lambda: hidden(tmp_path) != [])  # a temporary exists: the child is inside a write
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert target.read_bytes() in (OLD, NEW)
    leftover = hidden(tmp_path)  # the half-written temporary (unless the kill fell between two writes)
    assert len(leftover) <= 1 and [p.name for p in remove_leftovers(tmp_path)] == leftover
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "last.safetensors"
    atomic_write(target, b"old complete checkpoint")

    def killed(fd: int) -> None:
        raise KeyboardInterrupt  # the process dies after writing, before the rename

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new checkpoint that never lands")
    assert target.read_bytes() == b"old complete checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temp file left behind


FULL_DISK = """
import resource, signal, sys
from model.atomic import atomic_write
from model.errors import WriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    atomic_write(sys.argv[1], b"n" * 300_000)
except WriteError as exc:
    print(exc)
"""


def test_a_full_disk_raises_write_error_naming_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write(target, "old")
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(target)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cannot write {target}: File too large"
    assert target.read_text() == "old" and hidden(tmp_path) == []


def test_text_and_file_objects(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a.txt", "grüße\n")
    assert (tmp_path / "a.txt").read_bytes() == "grüße\n".encode()
    with atomic.atomic_open(tmp_path / "b.txt", text=True) as handle:
        handle.write("one\n")
        assert not (tmp_path / "b.txt").exists()  # visible only once complete
    assert (tmp_path / "b.txt").read_text() == "one\n"
    assert oct((tmp_path / "b.txt").stat().st_mode & 0o777) == oct(atomic.FILE_MODE)
    with pytest.raises(WriteError, match="cannot write .*missing"):
        atomic_write(tmp_path / "missing" / "c.txt", "x")


def make_folder(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_publish_folder_replaces_the_whole_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   exchange: bool) -> None:
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # a filesystem without RENAME_EXCHANGE
    final = make_folder(tmp_path / "model", {"config.json": "old", "README.md": "old card"})
    publish_folder(make_folder(tmp_path / ".model.new.tmp", {"config.json": "new", "spm.model": "new"}), final)
    assert contents(final) == {"config.json": "new", "spm.model": "new"}
    publish_folder(make_folder(tmp_path / ".other.tmp", {"config.json": "fresh"}), tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "model"]


def test_staged_folder_publishes_only_on_success(tmp_path: Path) -> None:
    final = make_folder(tmp_path / "model", {"config.json": "old"})
    with pytest.raises(RuntimeError), staged_folder(final) as staging:
        (staging / "config.json").write_text("half")
        raise RuntimeError("killed while exporting")
    assert contents(final) == {"config.json": "old"} and hidden(tmp_path) == []
    with staged_folder(final) as staging:
        (staging / "config.json").write_text("new")
    assert contents(final) == {"config.json": "new"} and hidden(tmp_path) == []


def test_staged_folder_merges_into_a_run_folder(tmp_path: Path) -> None:
    run = make_folder(tmp_path / "run", {"validations.jsonl": "{}\n", "config.json": "old"})
    with staged_folder(run, merge_last="config.json") as staging:
        assert staging.parent == run  # beside the checkpoints, removed by the next run if killed
        (staging / "config.json").write_text("new")
        (staging / "model.safetensors").write_text("new")
    assert contents(run) == {"config.json": "new", "model.safetensors": "new", "validations.jsonl": "{}\n"}


PUBLISHER = """
import sys
from pathlib import Path
from model.atomic import staged_folder
final = Path(sys.argv[1])
while True:
    for text in ("new", "old"):
        with staged_folder(final) as staging:
            for name in ("config.json", "model.safetensors", "spm.model"):
                (staging / name).write_text(text)
"""


def test_a_killed_publisher_leaves_the_old_folder_or_the_new_one(tmp_path: Path) -> None:
    final = make_folder(tmp_path / "model", {n: "old" for n in ("config.json", "model.safetensors", "spm.model")})
    child = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(final)], cwd=ROOT,
                             env={**os.environ, "RNNMT_TEST_SLOW_WRITE": "0.05"})
    try:
        wait_for(lambda: hidden(tmp_path) != [])  # a staging folder: the child is about to swap
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert len(contents(final)) == 3 and set(contents(final).values()) in ({"old"}, {"new"})
    remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_remove_leftovers_removes_only_hidden_temporaries(tmp_path: Path) -> None:
    make_folder(tmp_path / ".model.1a2b3c4d.tmp", {"config.json": "x"})
    make_folder(tmp_path / ".model.1a2b3c4d.old", {"config.json": "x"})
    (tmp_path / ".last.safetensors.1a2b3c4d.tmp").write_text("half")
    (tmp_path / "last.safetensors").write_text("whole")
    (tmp_path / ".gitignore").write_text("*")
    removed = remove_leftovers(tmp_path)
    assert len(removed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "last.safetensors"]
