#!/usr/bin/env bash
# Train (or resume) one Multi30k pair, tune nothing on test, score val and test, benchmark, and export
# the fp16 model folder with its card into released-models/. Usage: scripts/release-model.sh en-de
set -euo pipefail
PAIR=${1:?pair, e.g. en-de}
RNNMT=${RNNMT:-.venv/bin/rnnmt}
RUN=runs/$PAIR
OUT=released-models/multi30k-$PAIR
EXTRA=${TRAIN_ARGS:-}
if [ -f "$RUN/checkpoints/last.safetensors" ]; then RESUME=--resume; else RESUME=; fi
$RNNMT train --config configs/multi30k-$PAIR.yaml --out "$RUN" $RESUME $EXTRA
$RNNMT evaluate --model "$RUN" --testset multi30k:val --json "$RUN/eval-val.json"
$RNNMT evaluate --model "$RUN" --testset multi30k:test_2016_flickr --json "$RUN/eval-test.json"
$RNNMT bench --model "$RUN" --json "$RUN/bench.json"
.venv/bin/python -m training.release --run "$RUN" --out "$OUT" --config configs/multi30k-$PAIR.yaml \
  --val "$RUN/eval-val.json" --test "$RUN/eval-test.json" --bench "$RUN/bench.json"
