#!/usr/bin/env python3
"""A synthetic parallel corpus of N distinct pairs made from Multi30k by repetition and shuffling, for the
scale benchmark (scripts/bench-scale.sh). Pair i joins two Multi30k training pairs chosen at random
(source with source, target with target), so the pairs stay translations of each other and are nearly all
distinct. Never committed: it is written under runs/.

Usage: scripts/scale-corpus.py OUT.tsv [--pairs 5000000] [--pair de-en] [--data-dir ../shared/data/multi30k]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.data import default_data_dir, multi30k_file, read_parallel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pairs", type=int, default=5_000_000)
    parser.add_argument("--pair", default="de-en")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    src_lang, tgt_lang = args.pair.split("-")
    folder = args.data_dir or default_data_dir()
    src, tgt = read_parallel(multi30k_file(folder, "train", src_lang), multi30k_file(folder, "train", tgt_lang))
    rng = random.Random(args.seed)
    n = len(src)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for _ in range(args.pairs):
            a, b = rng.randrange(n), rng.randrange(n)
            out.write(f"{src[a]} {src[b]}\t{tgt[a]} {tgt[b]}\n")
    print(f"wrote {args.pairs:,} pairs to {args.out}")


if __name__ == "__main__":
    main()
