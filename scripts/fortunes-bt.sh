#!/usr/bin/env bash
# Back-translated everyday English for de->en (configs/everyday-de-en-bt.yaml, everyday-de-en-r2l-bt.yaml):
# the English sentences of Debian's fortune cookies (package `fortunes`, installed with apt when missing), minus any
# that is a side of a Ding dev or test sentence, translated into German by released-models/everyday-en-de
# (int8, beam 5, no reranking). Writes runs/bt/fortunes-bt.tsv (synthetic German <TAB> real English).
set -euo pipefail
RNNMT=${RNNMT:-.venv/bin/rnnmt}
PY=${PY:-.venv/bin/python}
OUT=runs/bt
mkdir -p "$OUT"
[ -d /usr/share/games/fortunes ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q fortunes fortunes-min >/dev/null
$PY -m training.fortunes > "$OUT/fortunes.en.tmp" && mv "$OUT/fortunes.en.tmp" "$OUT/fortunes.en"
$RNNMT translate --model released-models/everyday-en-de --precision int8 --beam-size 5 --reverse-model none \
  --right-to-left-model none -i "$OUT/fortunes.en" -o "$OUT/fortunes.de.tmp"
mv "$OUT/fortunes.de.tmp" "$OUT/fortunes.de"
paste "$OUT/fortunes.de" "$OUT/fortunes.en" > "$OUT/fortunes-bt.tsv.tmp" && mv "$OUT/fortunes-bt.tsv.tmp" "$OUT/fortunes-bt.tsv"
wc -l "$OUT/fortunes-bt.tsv"
