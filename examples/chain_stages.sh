#!/usr/bin/env bash
# Each stage alone, chained through stdout: every command prints its result path as its last stdout line.
set -euo pipefail
data=$(rfdetr-trainer fetch --dataset-dir "${1:-./data/my-dataset}")
ckpt=$(rfdetr-trainer train --dataset-dir "$data" --model-type nano --epochs "${EPOCHS:-10}")
rfdetr-trainer predict --checkpoint "$ckpt" --input "$data"
rfdetr-trainer export --checkpoint "$ckpt" --export-format onnx torchscript
