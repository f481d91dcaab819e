"""Fixtures for the service tests: a real `rnnmt serve` subprocess on a free 127.0.0.1 port serving a copy of
the tiny en->de model, started once per session and terminated at the end."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.bench_serve import running_server

TEST_BLEU = 99.5
SERVER_ENV = {
    "RNNMT_DEVICE": "cpu",
    "RNNMT_THREADS": "1",  # the test machine is small and shared
    "RNNMT_MAX_WAIT_MS": "20",  # wide enough that concurrent requests reliably share a batch
}


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{url}/ready", timeout=5.0).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become ready")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def served_models_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding one model folder, tiny-en-de, whose metrics.json has a test BLEU."""
    root = tmp_path_factory.mktemp("served-models")
    folder = root / "tiny-en-de"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("checkpoints"))
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "test_bleu": TEST_BLEU}))
    (root / "not-a-model").mkdir()  # ignored: no config.json
    return root


@pytest.fixture(scope="session")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-log") / "serve.log"


@pytest.fixture(scope="session")
def server_url(served_models_dir: Path, server_log: Path) -> Iterator[str]:
    """Base URL of a running server (ready: the model is loaded)."""
    with running_server(served_models_dir, SERVER_ENV, log_file=server_log) as url:
        wait_ready(url)
        yield url


@pytest.fixture()
def client(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=60.0) as http:
        yield http
