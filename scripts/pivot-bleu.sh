#!/usr/bin/env bash
# BLEU and chrF of a pair served through English (X -> en -> Y), as the service pivots: each leg's beam search
# with its model's defaults, the first leg's best hypothesis fed to the second. Multi30k is multi-way parallel,
# so test_2016_flickr has references for every pair. Usage: scripts/pivot-bleu.sh de fr [testset]
set -euo pipefail
X=${1:?source language, e.g. de}; Y=${2:?target language, e.g. fr}; SET=${3:-test_2016_flickr}
RNNMT=${RNNMT:-.venv/bin/rnnmt}; MODELS=${MODELS:-released-models}
DATA=${RNNMT_DATA_DIR:-../shared/data/multi30k}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
zcat "$DATA/$SET.$X.gz" > "$WORK/src"
zcat "$DATA/$SET.$Y.gz" > "$WORK/ref"
$RNNMT translate --model "$MODELS/multi30k-$X-en" -i "$WORK/src" -o "$WORK/en"
$RNNMT translate --model "$MODELS/multi30k-en-$Y" -i "$WORK/en" -o "$WORK/hyp"
echo "$X -> en -> $Y ($SET):"
.venv/bin/sacrebleu "$WORK/ref" -i "$WORK/hyp" -m bleu chrf -b -w 2
.venv/bin/sacrebleu "$WORK/ref" -i "$WORK/hyp" -m bleu chrf --format text | grep -o "nrefs[^ ]*" | head -2
