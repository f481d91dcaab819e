"""Text files are read wherever they come from: plain or gzip (told by content), a FIFO or a pipe, stdin."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from model.errors import DataError
from training.data import read_lines

LINES = ["Ein Hund läuft.", "", "Zwei Männer\tspielen."]


def test_plain_gzip_and_line_endings(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("\r\n".join(LINES).encode() + b"\r\n")
    (tmp_path / "b.txt").write_bytes("\n".join(LINES).encode())  # no final newline
    (tmp_path / "c.gz").write_bytes(gzip.compress(("\n".join(LINES) + "\n").encode()))
    (tmp_path / "zipped-without-suffix").write_bytes(gzip.compress(("\n".join(LINES) + "\n").encode()))
    (tmp_path / "empty").write_bytes(b"")
    for name in ("a.txt", "b.txt", "c.gz", "zipped-without-suffix"):
        assert read_lines(tmp_path / name) == LINES
    assert read_lines(tmp_path / "empty") == []
    (tmp_path / "latin1").write_bytes("Männer".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_lines(tmp_path / "latin1")
    with pytest.raises(DataError, match="file not found"):
        read_lines(tmp_path / "missing")


def test_fifo_as_process_substitution_makes_one(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(gzip.compress("\n".join(LINES).encode())))
    writer.start()
    assert read_lines(fifo) == LINES
    writer.join()


def test_dash_is_stdin() -> None:
    code = "import sys, json; from training.data import read_lines; print(json.dumps(read_lines('-')))"
    done = subprocess.run([sys.executable, "-c", code], input="\n".join(LINES).encode(), capture_output=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout) == LINES
