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
# the folder serving a pair, as the service picks it (config.json's languages; first by name)
model_for() { .venv/bin/python - "$MODELS" "$1" "$2" <<'PY'
import json, sys
from pathlib import Path
for folder in sorted(Path(sys.argv[1]).iterdir()):
    config = folder / "config.json"
    if config.is_file() and not folder.name.startswith("."):
        c = json.loads(config.read_text())
        if (c.get("source_lang"), c.get("target_lang")) == (sys.argv[2], sys.argv[3]):
            print(folder)
            break
PY
}
$RNNMT translate --model "$(model_for "$X" en)" -i "$WORK/src" -o "$WORK/en"
$RNNMT translate --model "$(model_for en "$Y")" -i "$WORK/en" -o "$WORK/hyp"
echo "$X -> en -> $Y ($SET):"
.venv/bin/sacrebleu "$WORK/ref" -i "$WORK/hyp" -m bleu chrf -b -w 2
.venv/bin/sacrebleu "$WORK/ref" -i "$WORK/hyp" -m bleu chrf --format text | grep -o "nrefs[^ ]*" | head -2
