"""Atomic writes: every file rnnmt writes is seen whole or not at all, whenever the process dies (SIGKILL, a full
disk, a power cut). The one recipe, after LWN's "Ensuring data reaches disk": write a temporary file in the same
folder, flush, fsync, rename it over the target (atomic on POSIX), fsync the folder so the rename itself is durable.

A model folder is published the same way as a whole: written into a temporary folder beside it, fsynced, then
swapped into place (`renameat2(RENAME_EXCHANGE)` where the kernel has it, else rename the old one aside first).

Temporary names are hidden and end in `.tmp` (files and folders) or `.old` (a replaced folder), so a process
restarted after a kill can remove what its predecessor left (`remove_leftovers`) and readers never mistake them for
real files. A failed write (no space left, file too large, no permission) raises `WriteError` naming the target and
leaves the previous file or folder untouched.

RNNMT_TEST_SLOW_WRITE=SECONDS pauses at the moment a kill would do most harm (half the bytes written; a folder
about to be swapped): the fault tests use it to land SIGKILLs inside writes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from model.errors import WriteError

FILE_MODE = 0o644  # mkstemp-style owner-only files would hide model folders from a container's other users


def _pause() -> None:
    seconds = os.environ.get("RNNMT_TEST_SLOW_WRITE")
    if seconds:
        time.sleep(float(seconds))


def _hidden(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{suffix}")


def _failed(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | Path, text: bool = False, encoding: str = "utf-8") -> Iterator[IO]:
    """A file object writing to a temporary beside `path`; on a clean exit it replaces `path` (fsynced), on an
    error it is removed and `path` keeps its old content."""
    path = Path(path)
    tmp = _hidden(path, ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": encoding} if text else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _failed(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str is written as UTF-8) atomically and durably."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_open(path) as handle:
        half = len(raw) // 2
        handle.write(raw[:half])
        handle.flush()
        _pause()  # a kill here leaves a half-written temporary, never a half-written `path`
        handle.write(raw[half:])


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the kernel, libc or filesystem lacks it."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def publish_folder(tmp_dir: str | Path, final_dir: str | Path) -> None:
    """Make the completely written `tmp_dir` (beside `final_dir`) become `final_dir`: fsync it, then swap it in
    atomically where the kernel can (the old folder is removed after), else rename the old one aside first."""
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    _fsync_tree(tmp_dir)
    _pause()
    if not final_dir.exists():
        os.rename(tmp_dir, final_dir)
    elif _exchange(tmp_dir, final_dir):
        shutil.rmtree(tmp_dir)  # now holds the old folder
    else:
        old = _hidden(final_dir, ".old")
        os.rename(final_dir, old)
        os.rename(tmp_dir, final_dir)  # a kill between these two renames leaves `old` for a person to restore
        shutil.rmtree(old)
    fsync_dir(final_dir.parent)


def _move_files(tmp_dir: Path, final_dir: Path, last: str) -> None:
    """Rename each file of tmp_dir into final_dir (each atomically), `last` last: the folder is complete once it
    lands. For a folder that holds more than the model (a training run with its checkpoints)."""
    _fsync_tree(tmp_dir)
    names = sorted(p.name for p in tmp_dir.iterdir())
    for name in sorted(names, key=lambda n: n == last):
        if name == last:
            _pause()
        os.replace(tmp_dir / name, final_dir / name)
    fsync_dir(final_dir)
    tmp_dir.rmdir()


@contextmanager
def staged_folder(final_dir: str | Path, merge_last: str | None = None) -> Iterator[Path]:
    """An empty temporary folder to write a whole folder into; on a clean exit it becomes `final_dir`
    (`publish_folder`), on an error it is removed and `final_dir` is untouched. With merge_last, `final_dir` holds
    other things too (a training run): the temporary folder sits inside it and its files are moved in, that one last.
    Plain writes inside are fine: everything is fsynced before it is published."""
    final_dir = Path(final_dir)
    try:
        if merge_last:
            final_dir.mkdir(parents=True, exist_ok=True)
            tmp = final_dir / f".staged.{uuid.uuid4().hex[:8]}.tmp"
        else:
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = _hidden(final_dir, ".tmp")
        tmp.mkdir()
    except OSError as exc:
        raise _failed(final_dir, exc) from None
    try:
        yield tmp
        if merge_last:
            _move_files(tmp, final_dir, merge_last)
        else:
            publish_folder(tmp, final_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _failed(final_dir, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Remove the hidden temporaries that a killed process left in `folder`; the paths removed. Call it only where
    no other process is writing (a training run's own folders, at start)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.name.endswith((".tmp", ".old")):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def append_line(path: str | Path, line: str) -> None:
    """Append one line and fsync: a log (validations.jsonl) grows by whole lines; a kill can at worst lose the
    last one, which the next run writes again."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _failed(path, exc) from None
