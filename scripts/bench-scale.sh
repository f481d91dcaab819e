#!/usr/bin/env bash
# The scale benchmark of `rnnmt prepare` and `rnnmt train` (issue: corpora at any size): a synthetic corpus of
# PAIRS distinct pairs (scripts/scale-corpus.py), prepared with peak RSS and time measured by /usr/bin/time,
# then one training step with its peak RSS and the time to the first step. Run on a quiet machine.
# Usage: scripts/bench-scale.sh [PAIRS]   (default 5000000; writes under runs/scale/, never committed)
set -euo pipefail
PAIRS=${1:-5000000}
RNNMT=${RNNMT:-.venv/bin/rnnmt}
DIR=runs/scale
mkdir -p "$DIR"
[ -f "$DIR/corpus-$PAIRS.tsv" ] || .venv/bin/python scripts/scale-corpus.py "$DIR/corpus-$PAIRS.tsv" --pairs "$PAIRS"
rm -rf "$DIR/prepared" "$DIR/run"
# prepare and train read the same settings (the shipped de-en recipe on this corpus), so train reuses the shards
SETS=(--set "data.prepared_dir=$DIR/prepared" --set data.dataset=null --set "data.corpora=[$DIR/corpus-$PAIRS.tsv]"
      --set "data.valid_corpora=[multi30k]")
/usr/bin/time -v -o "$DIR/prepare.time" $RNNMT prepare --config configs/multi30k-de-en.yaml "${SETS[@]}" \
  > "$DIR/prepare.out" 2> "$DIR/prepare.log"
cat "$DIR/prepare.out"
START=$(date +%s.%N)  # the first step's log line is timed against this (process start, imports included)
/usr/bin/time -v -o "$DIR/train.time" $RNNMT train --config configs/multi30k-de-en.yaml --out "$DIR/run" "${SETS[@]}" \
  --set train.threads=2 --set train.valid_every=100000 --max-steps 1 > "$DIR/train.log" 2>&1 || true
FIRST=$(grep -a -o "20[0-9-]* [0-9:]*,[0-9]* INFO training.trainer: first step" "$DIR/train.log" | head -1 | cut -c1-23)
[ -n "$FIRST" ] && echo "train: first step $(awk -v a="$(date -d "${FIRST/,/.}" +%s.%N)" -v b="$START" \
  'BEGIN{printf "%.1f", a-b}') s after the command started"
seconds() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
P=$(seconds "$DIR/prepare.time")
echo "prepare: $PAIRS pairs in ${P} s ($(awk -v n="$PAIRS" -v s="$P" 'BEGIN{printf "%.0f", n/s}') pairs/s), peak RSS $(rss "$DIR/prepare.time") MB"
echo "train (setup + first step, then export of the 1-step model): $(seconds "$DIR/train.time") s, peak RSS $(rss "$DIR/train.time") MB"
