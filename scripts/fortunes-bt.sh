#!/usr/bin/env bash
# Back-translated everyday text from Debian's fortune cookies, minus any sentence that is a side of a Ding dev or test
# sentence (python -m training.fortunes), translated by the released model of the other direction (int8, beam 5, no
# reranking); the package is installed with apt when missing.
# Usage: scripts/fortunes-bt.sh [en]  English fortunes (`fortunes`) into German by everyday-en-de, for de->en
#                                     (configs/everyday-de-en-bt.yaml, -r2l-bt): runs/bt/fortunes-bt.tsv
#        scripts/fortunes-bt.sh de    German fortunes (`fortunes-de`) into English by everyday-de-en, for en->de
#                                     (configs/everyday-en-de-bt.yaml, -r2l-bt): runs/bt/fortunes-de-bt.tsv
# Each line of the .tsv: synthetic source <TAB> real target.
set -euo pipefail
LANG_=${1:-en}
RNNMT=${RNNMT:-.venv/bin/rnnmt}
PY=${PY:-.venv/bin/python}
OUT=runs/bt
case $LANG_ in
  en) OTHER=de; PACKAGES=(fortunes fortunes-min); DIR=/usr/share/games/fortunes; NAME=fortunes ;;
  de) OTHER=en; PACKAGES=(fortunes-de); DIR=/usr/share/games/fortunes/de; NAME=fortunes-de ;;
  *) echo "usage: $0 [en|de]" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
[ -d "$DIR" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >/dev/null
$PY -m training.fortunes "$LANG_" > "$OUT/$NAME.$LANG_.tmp" && mv "$OUT/$NAME.$LANG_.tmp" "$OUT/$NAME.$LANG_"
$RNNMT translate --model "released-models/everyday-$LANG_-$OTHER" --precision int8 --beam-size 5 --reverse-model none \
  --right-to-left-model none -i "$OUT/$NAME.$LANG_" -o "$OUT/$NAME.$OTHER.tmp"
mv "$OUT/$NAME.$OTHER.tmp" "$OUT/$NAME.$OTHER"
paste "$OUT/$NAME.$OTHER" "$OUT/$NAME.$LANG_" > "$OUT/$NAME-bt.tsv.tmp" && mv "$OUT/$NAME-bt.tsv.tmp" "$OUT/$NAME-bt.tsv"
wc -l "$OUT/$NAME-bt.tsv"
