"""Bad input to the command line: one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def rnnmt(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], input=stdin, capture_output=True, cwd=cwd,
                          timeout=120, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                            "PATH": "/usr/bin:/bin"})


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("rnnmt: error:")]
    assert len(error_lines) == 1, stderr
    for fragment in fragments:
        assert fragment in error_lines[0], stderr


def test_prepare_missing_file(tmp_path: Path) -> None:
    result = rnnmt("prepare", "--src", str(tmp_path / "nope.en"), "--tgt", str(tmp_path / "nope.de"),
                   "--out", str(tmp_path / "p"))
    assert_user_error(result, "file not found", "nope.en")


def test_prepare_misaligned_files(tmp_path: Path) -> None:
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "a.de").write_text("eins\nzwei\n")
    result = rnnmt("prepare", "--src", str(tmp_path / "a.en"), "--tgt", str(tmp_path / "a.de"),
                   "--out", str(tmp_path / "p"))
    assert_user_error(result, "misaligned", "3 lines", "2")


@pytest.mark.parametrize(("setting", "fragment"), [
    ("model.cell=transformer", "model.cell"),
    ("train.lr=fast", "train.lr"),
    ("train.warmup=3", "unknown setting"),
    ("nonsense", "--set expects"),
])
def test_train_bad_config(tmp_path: Path, setting: str, fragment: str) -> None:
    result = rnnmt("train", "--config", "configs/multi30k-en-de.yaml", "--out", str(tmp_path / "m"),
                   "--set", setting, cwd=Path(__file__).resolve().parents[2])
    assert_user_error(result, fragment)


def test_train_missing_config(tmp_path: Path) -> None:
    assert_user_error(rnnmt("train", "--config", str(tmp_path / "x.yaml"), "--out", str(tmp_path)), "not found")


def test_translate_unknown_model_folder(tmp_path: Path) -> None:
    assert_user_error(rnnmt("translate", "--model", str(tmp_path / "missing"), stdin=b"hi\n"), "not found")


def test_translate_corrupt_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken, ignore=shutil.ignore_patterns("checkpoints"))
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    assert_user_error(rnnmt("translate", "--model", str(broken), stdin=b"one\n"), "cannot read weights")


def test_translate_mismatched_sentencepiece(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir, broken, ignore=shutil.ignore_patterns("checkpoints"))
    config = (broken / "config.json").read_text().replace('"tgt_vocab_size": ', '"tgt_vocab_size": 1')
    (broken / "config.json").write_text(config)
    assert_user_error(rnnmt("translate", "--model", str(broken), stdin=b"one\n"), "do not match")


def test_translate_beam_size_zero(tiny_model_dir: Path) -> None:
    result = rnnmt("translate", "--model", str(tiny_model_dir), "--beam-size", "0", stdin=b"one\n")
    assert result.returncode == 2 and "positive integer" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_translate_invalid_utf8(tiny_model_dir: Path) -> None:
    result = rnnmt("translate", "--model", str(tiny_model_dir), stdin=b"one two\n\xff\xfe bad\n")
    assert_user_error(result, "not valid UTF-8")


def test_translate_streams_lines_in_order(tiny_model_dir: Path) -> None:
    result = rnnmt("translate", "--model", str(tiny_model_dir), "--beam-size", "1", "--batch-size", "1",
                   stdin=b"three one four\n\nnine eight\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == ["vier eins drei", "", "acht neun"]


def test_translate_reranks_with_the_reverse_model_it_is_given(tiny_model_dir: Path,
                                                              tiny_reverse_model_dir: Path) -> None:
    result = rnnmt("translate", "--model", str(tiny_model_dir), "--reverse-weight", "1", stdin=b"one\n")
    assert_user_error(result, "--reverse-weight needs the de->en model", "--reverse-model DIR")
    result = rnnmt("translate", "--model", str(tiny_model_dir), "--reverse-model", str(tiny_reverse_model_dir),
                   "--reverse-weight", "1", "--beam-size", "3", "--n-best", "2", stdin=b"three one four\n")
    assert result.returncode == 0, result.stderr.decode()
    rows = [line.split("\t") for line in result.stdout.decode().splitlines() if line]
    assert len(rows) == 2 and all(len(row) == 3 for row in rows)  # score, reverse score, text
    assert [float(a) + float(b) for a, b, _ in rows] == sorted((float(a) + float(b) for a, b, _ in rows),
                                                               reverse=True)


def test_translate_reranks_with_both_second_opinions(tiny_model_dir: Path, tiny_reverse_model_dir: Path,
                                                     tiny_right_to_left_model_dir: Path) -> None:
    result = rnnmt("translate", "--model", str(tiny_model_dir), "--right-to-left-weight", "1", stdin=b"one\n")
    assert_user_error(result, "--right-to-left-weight needs a right-to-left en->de model", "--right-to-left-model")
    result = rnnmt("translate", "--model", str(tiny_model_dir), "--reverse-model", str(tiny_reverse_model_dir),
                   "--right-to-left-model", str(tiny_right_to_left_model_dir), "--reverse-weight", "1",
                   "--right-to-left-weight", "2", "--beam-size", "3", "--n-best", "3", stdin=b"three one four\n")
    assert result.returncode == 0, result.stderr.decode()
    rows = [line.split("\t") for line in result.stdout.decode().splitlines() if line]
    assert len(rows) == 3 and all(len(row) == 4 for row in rows)  # score, reverse, right-to-left, text
    ranks = [float(a) + float(b) + 2 * float(c) for a, b, c, _ in rows]
    assert ranks == sorted(ranks, reverse=True)


def test_bench_writes_the_documented_keys(tmp_path: Path, tiny_model_dir: Path, tiny_reverse_model_dir: Path) -> None:
    import json

    corpus = tmp_path / "src.txt"
    corpus.write_text("three one four\nnine eight\none two three four\n" * 4)
    out = tmp_path / "bench.json"
    result = rnnmt("bench", "--model", str(tiny_model_dir), "--src", str(corpus), "--ref", str(corpus),
                   "--max-sentences", "12", "--train-steps", "2", "--json", str(out),
                   "--reverse-model", str(tiny_reverse_model_dir), "--reverse-weight", "1")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(out.read_text())
    for key in ("params", "flops_per_target_token", "machine_matmul_gflops", "train_tokens_per_s", "peak_rss_mb"):
        assert report[key] > 0, key
    assert set(report["latency_ms"]) >= {"p50", "p95"}
    assert report["precisions"][0]["reranked_latency_ms"]["p50"] > 0  # the service's path when both are loaded
    printed = result.stdout.decode()
    assert "reranked" in printed and "{" not in printed  # every figure formatted, none left as a template
    assert {(r["search"], r["batch_size"]) for r in report["decode"]} == {
        ("greedy", 1), ("greedy", 64), ("beam5", 1), ("beam5", 64)}
    assert all(0 < r["limit_fraction"] < 1 and r["sentences_per_s"] > 0 for r in report["decode"])


def test_shortlist_is_built_from_a_corpus_and_searched_on_request(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = rnnmt("translate", "--model", str(tiny_model_dir), "--shortlist", stdin=b"one\n")
    assert_user_error(result, "has no shortlist.safetensors", "rnnmt shortlist")
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("checkpoints"))
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text("three one four\tvier eins drei\nnine eight\tacht neun\n" * 20, encoding="utf-8")
    report = tmp_path / "shortlist.json"
    result = rnnmt("shortlist", "--model", str(folder), "--corpus", str(corpus), "--frequent", "4",
                   "--per-source", "3", "--json", str(report))
    assert result.returncode == 0, result.stderr.decode()
    assert "the 4 most frequent target pieces and 3 per source piece, from 40 sentence pairs" in result.stdout.decode()
    assert (folder / "shortlist.safetensors").is_file()
    import json

    written = json.loads(report.read_text())  # what the model card says of it (training/card.py)
    assert {k: written[k] for k in ("file", "frequent", "per_source", "pairs", "corpora")} == {
        "file": "shortlist.safetensors", "frequent": 4, "per_source": 3, "pairs": 40, "corpora": [str(corpus)]}
    plain = rnnmt("translate", "--model", str(folder), stdin=b"three one four\n")
    shortlisted = rnnmt("translate", "--model", str(folder), "--shortlist", stdin=b"three one four\n")
    assert shortlisted.returncode == 0, shortlisted.stderr.decode()
    # 48 pieces: padded to whole rows of 64 a shortlist holds them all, so search runs on the whole vocabulary
    assert shortlisted.stdout == plain.stdout
    out = tmp_path / "bench.json"
    result = rnnmt("bench", "--model", str(folder), "--src", str(corpus), "--max-sentences", "4", "--limit-rounds", "1",
                   "--json", str(out))
    assert result.returncode == 0, result.stderr.decode()
    rows = json.loads(out.read_text())["precisions"][0]["shortlist_latency_ms"]
    assert rows["greedy"]["beam_size"] == 1 and rows["greedy"]["p50"] > 0 and rows["beam"]["p50"] > 0
    assert "(greedy, shortlist)" in result.stdout.decode()


def test_plot_attention_writes_a_png(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "att.png"
    result = rnnmt("plot-attention", "--model", str(tiny_model_dir), "--text", "three one four", "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_serve_with_a_bad_setting_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "1"], capture_output=True,
                            timeout=120, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                              "PATH": "/usr/bin:/bin", "RNNMT_REGROUP_MS": "-5"})
    assert_user_error(result, "RNNMT_REGROUP_MS", "-5")


def test_bench_serve_rejects_a_negative_wait() -> None:
    result = rnnmt("bench-serve", "--models-dir", ".", "--regroup-ms", "-1")
    assert result.returncode == 2 and "expected a number >= 0" in result.stderr.decode()


@pytest.mark.parametrize("command", ["evaluate", "bench", "shortlist"])
def test_a_report_into_a_missing_folder_is_refused_before_the_work(tmp_path: Path, command: str) -> None:
    result = rnnmt(command, "--model", str(tmp_path), "--json", str(tmp_path / "missing" / "report.json"))
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr
    assert f"argument --json: folder {tmp_path / 'missing'} does not exist" in stderr
