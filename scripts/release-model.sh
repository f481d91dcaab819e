#!/usr/bin/env bash
# Train (or resume) one recipe, tune nothing on test, score dev and test sets, benchmark, and export the fp16
# model folder with its card into released-models/.
# Usage: scripts/release-model.sh en-de            (configs/multi30k-en-de.yaml)
#        scripts/release-model.sh everyday-de-en   (configs/everyday-de-en.yaml; adds the Ding dev/test splits)
set -euo pipefail
NAME=${1:?recipe, e.g. en-de or everyday-de-en}
[[ $NAME =~ ^[a-z]{2}-[a-z]{2}$ ]] && NAME=multi30k-$NAME
RNNMT=${RNNMT:-.venv/bin/rnnmt}
CONFIG=configs/$NAME.yaml
RUN=runs/$NAME
OUT=released-models/$NAME
EXTRA=${TRAIN_ARGS:-}
if [ -f "$RUN/checkpoints/last.safetensors" ]; then RESUME=--resume; else RESUME=; fi
$RNNMT train --config "$CONFIG" --out "$RUN" $RESUME $EXTRA
$RNNMT evaluate --model "$RUN" --testset multi30k:val --json "$RUN/eval-val.json"
$RNNMT evaluate --model "$RUN" --testset multi30k:test_2016_flickr --json "$RUN/eval-test.json"
MORE=()
if [[ $NAME == everyday-* ]]; then
  for split in dev test; do
    $RNNMT evaluate --model "$RUN" --testset ding:$split --json "$RUN/eval-ding-$split.json"
    MORE+=(--extra "ding:$split=$RUN/eval-ding-$split.json")
  done
  MORE+=(--title "rnnmt everyday ${NAME#everyday-} (Multi30k + Ding)")
fi
$RNNMT bench --model "$RUN" --json "$RUN/bench.json"
.venv/bin/python -m training.release --run "$RUN" --out "$OUT" --config "$CONFIG" \
  --val "$RUN/eval-val.json" --test "$RUN/eval-test.json" --bench "$RUN/bench.json" "${MORE[@]}"
