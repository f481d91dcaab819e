#!/usr/bin/env bash
# Train (or resume) one recipe, with its second stage when it has one, tune beam size and length penalty on the
# dev sets (never on test), score dev and test sets, benchmark, and export the fp16 model folder with its card
# into released-models/, with its lexical shortlist (built in the run folder, shipped and described on the card).
# Usage: scripts/release-model.sh en-de            (configs/multi30k-en-de.yaml)
#        scripts/release-model.sh everyday-de-en   (configs/everyday-de-en.yaml; adds the Ding dev/test splits)
#        scripts/release-model.sh everyday-en-de-r2l (a right-to-left model: trained and scored, not tuned; it
#                                                   reranks released-models/everyday-en-de, which starts it)
# A recipe NAME trains in two stages when configs/NAME-continue.yaml exists: that config starts from runs/NAME
# (train.init_from) and trains runs/NAME-continue; the model released averages the best checkpoints both kept (runs/NAME-averaged).
# A recipe BASE-bt is one more stage on top of released-models/BASE (its train.init_from), with back-translated data
# (scripts/fortunes-bt.sh first): released in BASE's place, its card carrying BASE's earlier stages.
# TUNE_ARGS: more `rnnmt tune` options (length penalties, weight grids); BEAMS: its beam sizes.
set -euo pipefail
NAME=${1:?recipe, e.g. en-de or everyday-de-en}
[[ $NAME =~ ^[a-z]{2}-[a-z]{2}$ ]] && NAME=multi30k-$NAME
RNNMT=${RNNMT:-.venv/bin/rnnmt}
BASE=${NAME%-bt}
OUT=released-models/$BASE
EARLIER=()
[ "$BASE" != "$NAME" ] && EARLIER=(--earlier-card "$OUT/README.md")
EXTRA=${TRAIN_ARGS:-}
CONFIGS=(configs/$NAME.yaml)
RUNS=(runs/$NAME)
if [ -f "configs/$NAME-continue.yaml" ]; then CONFIGS+=("configs/$NAME-continue.yaml"); RUNS+=("runs/$NAME-continue"); fi
STAGE_ARGS=()
for i in "${!CONFIGS[@]}"; do
  if [ -f "${RUNS[$i]}/checkpoints/last.safetensors" ]; then RESUME=--resume; else RESUME=; fi
  $RNNMT train --config "${CONFIGS[$i]}" --out "${RUNS[$i]}" $RESUME $EXTRA
  STAGE_ARGS+=(--config "${CONFIGS[$i]}" --earlier-run "${RUNS[$i]}")
done
if [ ${#RUNS[@]} -gt 1 ]; then
  RUN=runs/$NAME-averaged
  $RNNMT average --checkpoints --out "$RUN" "${RUNS[@]}"  # every best checkpoint both stages kept
else
  RUN=${RUNS[0]}
fi
DEV=(--testset multi30k:val)
[[ $BASE == everyday-* ]] && DEV+=(--testset ding:dev)
# Beams are reranked (model/rerank.py) by the released model of the other direction and the released right-to-left
# model of this one, those there are; a right-to-left model is scored as it is, alone.
REV=(--reverse-model none --right-to-left-model none)
if [[ $BASE != *-r2l ]]; then
  REVERSE=released-models/${BASE%-*-*}-${BASE##*-}-${BASE: -5:2}
  [ -f "$REVERSE/config.json" ] && REV[1]=$REVERSE
  [ -f "released-models/$BASE-r2l/config.json" ] && REV[3]=released-models/$BASE-r2l
  $RNNMT tune --model "$RUN" "${DEV[@]}" --beam-sizes "${BEAMS:-6,8}" "${REV[@]}" ${TUNE_ARGS:-}
fi
$RNNMT evaluate --model "$RUN" --testset multi30k:val --json "$RUN/eval-val.json" "${REV[@]}"
$RNNMT evaluate --model "$RUN" --testset multi30k:test_2016_flickr --json "$RUN/eval-test.json" "${REV[@]}"
MORE=()
if [[ $BASE == everyday-* ]]; then
  for split in dev test; do
    $RNNMT evaluate --model "$RUN" --testset ding:$split --json "$RUN/eval-ding-$split.json" "${REV[@]}"
    MORE+=(--extra "ding:$split=$RUN/eval-ding-$split.json")
  done
  TITLE=${BASE#everyday-}
  MORE+=(--title "rnnmt everyday ${TITLE%-r2l}$([[ $BASE == *-r2l ]] && echo ' right-to-left') (Multi30k + Ding)")
fi
$RNNMT bench --model "$RUN" --json "$RUN/bench.json" "${REV[@]}"
# The lexical shortlist (model/shortlist.py), built from the corpora the model trained on; searched on request.
# SHORTLIST_FREQUENT: its most frequent target pieces (500; de->en keeps 1000, where 500 cost 0.22 BLEU on val).
if [[ $BASE != *-r2l ]]; then
  $RNNMT shortlist --model "$RUN" --frequent "${SHORTLIST_FREQUENT:-500}" "${DEV[@]}" --json "$RUN/shortlist.json"
  MORE+=(--shortlist "$RUN/shortlist.json")
fi
.venv/bin/python -m training.release --run "$RUN" --out "$OUT" "${STAGE_ARGS[@]}" \
  --val "$RUN/eval-val.json" --test "$RUN/eval-test.json" --bench "$RUN/bench.json" "${MORE[@]}" "${EARLIER[@]}"
