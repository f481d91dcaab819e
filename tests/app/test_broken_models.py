"""A models folder with broken model folders among a good one: the service starts, serves the good model, and
/ready and the log name each broken folder and why; the CLI gives one line and exit 2 for each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from app.bench_serve import running_server
from tests.app.conftest import SERVER_ENV, wait_ready


def broken_models(tiny_model_dir: Path, root: Path) -> dict[str, str]:
    """Copies of the tiny model, each broken one way; returns name -> a word its reason must contain."""
    copy = lambda name: shutil.copytree(tiny_model_dir, root / name, ignore=shutil.ignore_patterns("checkpoints"))  # noqa: E731
    copy("good")
    (copy("truncated") / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes()[:900])
    tokenizer = json.loads((tiny_model_dir / "config.json").read_text()).get("tokenizer", {}).get("src", "spm.model")
    (copy("no-tokenizer") / tokenizer).unlink()
    for name, change in {"future": lambda c: {**c, "version": 99},
                         "shapes": lambda c: {**c, "model": {**c["model"], "decoder_hidden": 7}}}.items():
        folder = copy(name)
        folder.joinpath("config.json").write_text(json.dumps(change(json.loads((folder / "config.json").read_text()))))
    (root / "loop").mkdir()
    os.symlink(root / "loop" / "config.json", root / "loop" / "config.json")
    return {"truncated": "weights", "no-tokenizer": "SentencePiece", "future": "version 99", "shapes": "match",
            "loop": "config.json"}


def test_broken_folders_are_named_and_the_good_one_served(tiny_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    expected = broken_models(tiny_model_dir, root)
    log = tmp_path / "serve.log"
    with running_server(root, {**SERVER_ENV, "RNNMT_KEYS_DB": str(tmp_path / "k.sqlite")}, log_file=log) as url:
        wait_ready(url)
        ready = httpx.get(f"{url}/ready").json()
        assert ready["models"] == 1 and set(ready["broken"]) == set(expected)
        for name, word in expected.items():
            assert word in ready["broken"][name], (name, ready["broken"][name])
        answer = httpx.post(f"{url}/translate", json={"text": "one two", "source": "en", "target": "de"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["model"]["name"] == "good"
    text = log.read_text()
    assert all(f"skipping broken model folder {root / name}" in text for name in expected)
    for name in expected:
        done = subprocess.run([sys.executable, "-m", "app.cli", "translate", "--model", str(root / name)],
                              input="one two\n", capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("rnnmt: error:"), (name, done.stderr)
