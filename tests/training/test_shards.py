"""Streaming prepare: deduplication, weights as an examples index, token-id shards read back through memmaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.data import token_batches
from training.prepare import DataConfig, prepare, repeats
from training.shards import ShardWriter, TokenCorpus


def test_shards_round_trip(tmp_path: Path) -> None:
    src = [[5, 6, 7], [8], [9, 10]]
    tgt = [[11], [12, 13], [14, 15, 16, 17]]
    with ShardWriter(tmp_path, "train", vocab_size=70_000) as writer:  # > 65535: 32-bit ids
        writer.add(src[:2], tgt[:2])
        writer.add(src[2:], tgt[2:])
        meta = writer.close(np.array([2, 0, 0, 1]))
    assert meta == {"format": 1, "pairs": 3, "examples": 4, "dtype": "<u4"}
    corpus = TokenCorpus(tmp_path, "train")
    assert len(corpus) == 4
    assert corpus.src_lens.tolist() == [2, 3, 3, 1] and corpus.tgt_lens.tolist() == [4, 1, 1, 2]
    assert corpus.pairs(np.array([0, 3])) == ([[9, 10], [8]], [[14, 15, 16, 17], [12, 13]])
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_weights_repeat_and_sample_reproducibly() -> None:
    hashes = np.arange(1, 20_001, dtype=np.uint64) * np.uint64(2_654_435_761)
    reps = repeats(hashes, np.full(20_000, 2.25), seed=1)
    assert set(reps.tolist()) == {2, 3}
    assert abs(float((reps == 3).mean()) - 0.25) < 0.02
    assert np.array_equal(reps, repeats(hashes, np.full(20_000, 2.25), seed=1))
    assert not np.array_equal(reps, repeats(hashes, np.full(20_000, 2.25), seed=2))


def test_prepare_streams_dedups_weights_and_reports(tmp_path: Path) -> None:
    rows = [f"ein haus {i}\ta house {i}" for i in range(150)]
    rows += rows[:30]  # 30 duplicates
    rows += ["\tleer", "zu lang " * 50 + "\tshort"]  # an empty side, a pair over max_words
    corpus = tmp_path / "a.tsv"
    corpus.write_text("\n".join(rows) + "\n", encoding="utf-8")
    other = tmp_path / "b.tsv"
    other.write_text("".join(f"ein baum {i}\ta tree {i}\n" for i in range(100)), encoding="utf-8")
    config = DataConfig(prepared_dir=str(tmp_path / "prepared"), dataset=None, pair="de-en", vocab_size=60,
                        corpora=[f"{corpus}:2", f"{other}:0.5"], valid_corpora=[str(other)])
    folder = prepare(config)
    report = json.loads((folder / "prepare.json").read_text())["report"]["train"]
    assert report["read"] == 282 and report["kept"] == 250
    assert report["dropped"] == {"empty": 1, "too_long": 1, "duplicate": 30}
    examples = TokenCorpus(folder, "train")
    assert report["examples"] == len(examples)
    assert 300 + 25 <= len(examples) <= 300 + 75  # 150 pairs twice, and about half of the 100 of weight 0.5
    batches = token_batches(examples.src_lens, examples.tgt_lens, batch_tokens=64, seed=0, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(examples)))
    src, tgt = examples.pairs(batches[0])
    assert all(src) and all(tgt) and max(map(len, src)) < 20
