"""A models folder with broken model folders among a good one: the service starts, serves the good model, and
/ready and the log name each broken folder and why; the CLI gives one line and exit 2 for each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.bench_serve import running_server
from tests.app.conftest import SERVER_ENV, wait_ready

# name -> a word the reason must contain
BROKEN = {"truncated": "weights", "no-tokenizer": "SentencePiece", "future": "version 99", "shapes": "match",
          "loop": "config.json"}


def break_copies(tiny_model_dir: Path, root: Path) -> None:
    """Copies of the tiny model, each broken one way (BROKEN), a good one, and a half-published hidden one."""
    copy = lambda name: shutil.copytree(tiny_model_dir, root / name, ignore=shutil.ignore_patterns("checkpoints"))  # noqa: E731
    copy("good")
    copy(".good.1a2b3c4d.tmp")  # a publish in progress or interrupted (model/atomic.py): not a model folder
    (copy("truncated") / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes()[:900])
    tokenizer = json.loads((tiny_model_dir / "config.json").read_text()).get("tokenizer", {}).get("src", "spm.model")
    (copy("no-tokenizer") / tokenizer).unlink()
    for name, change in {"future": lambda c: {**c, "version": 99},
                         "shapes": lambda c: {**c, "model": {**c["model"], "decoder_hidden": 7}}}.items():
        folder = copy(name)
        folder.joinpath("config.json").write_text(json.dumps(change(json.loads((folder / "config.json").read_text()))))
    (root / "loop").mkdir()
    os.symlink(root / "loop" / "config.json", root / "loop" / "config.json")


@pytest.fixture(scope="module")
def models_root(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("broken-models")
    break_copies(tiny_model_dir, root)
    return root


@pytest.fixture(scope="module")
def served(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict, Path]]:
    """The server on the folder above: its URL, its /ready answer, its log."""
    log = tmp_path_factory.mktemp("broken-log") / "serve.log"
    env = {**SERVER_ENV, "RNNMT_KEYS_DB": str(log.parent / "k.sqlite")}
    with running_server(models_root, env, log_file=log) as url:
        wait_ready(url)
        yield url, httpx.get(f"{url}/ready").json(), log


@pytest.mark.parametrize("name", BROKEN)
def test_ready_and_the_log_name_the_broken_folder_and_why(served, models_root: Path, name: str) -> None:
    _, ready, log = served
    assert BROKEN[name] in ready["broken"][name], ready["broken"][name]
    assert str(models_root) not in ready["broken"][name]  # no server paths in /ready
    assert f"skipping broken model folder {models_root / name}" in log.read_text()


def test_the_good_model_is_served_and_nothing_else(served) -> None:
    url, ready, _ = served
    assert ready["models"] == 1 and set(ready["broken"]) == set(BROKEN)  # the hidden folder is not looked at
    answer = httpx.post(f"{url}/translate", json={"text": "one two", "source": "en", "target": "de"}, timeout=60)
    assert answer.status_code == 200 and answer.json()["model"]["name"] == "good"


@pytest.mark.parametrize("name", BROKEN)
def test_the_cli_gives_one_line_and_exit_2(models_root: Path, name: str) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "translate", "--model", str(models_root / name)],
                          input="one two\n", capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (name, done.stderr)
    assert lines[0].startswith("rnnmt: error:") and BROKEN[name] in lines[0], lines[0]
