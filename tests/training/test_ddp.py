"""Data-parallel training through torchrun: 2 CPU processes (gloo) train one model together."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_overrides


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun is not installed")
def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path / "data", tmp_path / "prepared", steps=60)
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    command = [torchrun, "--nproc-per-node", "2", "-m", "app.cli", "train", "--config", "configs/multi30k-en-de.yaml",
               "--out", str(tmp_path / "model"), "--device", "cpu"]
    for item in [*overrides, "train.valid_every=30"]:
        command += ["--set", item]
    result = subprocess.run(command, capture_output=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    validations = [json.loads(line) for line in (tmp_path / "model" / "validations.jsonl").read_text().splitlines()]
    assert [v["step"] for v in validations] == [30, 60]  # written once (rank 0), not once per process
    assert validations[-1]["val_bleu"] > validations[0]["val_bleu"]
    assert (tmp_path / "model" / "model.safetensors").is_file()
