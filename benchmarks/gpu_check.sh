#!/usr/bin/env bash
# GPU check: benchmarks/bench_train_throughput.py on the GPU: images/s of rfdetr-trainer train against the
# compute-bound limit and rfdetr's own RFDETRNano(pretrain_weights=None).train(), AMP, synthetic data, plus the data
# pipeline with and without the image cache.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repo root; about 10 minutes
#   (as run for the closing note: GPU_CHECK_STEPS=60 GPU_CHECK_EPOCHS=3 bash benchmarks/gpu_check.sh, carry .whl;
#    H200 figures in benchmarks/results/)
#   bash benchmarks/gpu_check.sh wheels     # HERE, before: download the wheels the GPU machine lacks into .whl/
#
# The GPU machine has torch but no package registry: the venv sees the system site-packages (torch, Lightning,
# tensorboard, …) and installs the rest from .whl/ (carry it: run(carry=[".whl"])). With internet, pip fills gaps.
# Output goes to $OUT (or ./gpu_check_out). Knobs: GPU_CHECK_STEPS (steps per epoch, 40), _BATCH (16), _RES (384),
# _EPOCHS (2), _DEVICE (cuda), _REPEATS (rounds, 2), _IMAGE (px, 320), _PIPELINE (1280x720 JPEGs, 96), _COMPILE (1),
# GPU_CHECK_PYTHON (use this interpreter, skip the venv). gpu_check.py is the earlier ours-vs-rfdetr check alone.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"; mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"; RESULTS="$OUT/gpu_check_results.jsonl"; : > "$RESULTS"
say() { echo "[gpu_check] $*" | tee -a "$LOG" >&2; }

# Not on the GPU image (KINDS.md), needed to import rfdetr's trainer and ours; pinned to what the CPU venv runs.
WHEELS=(rfdetr==1.11.2 supervision "pyDeprecate==0.9.0" "torchmetrics==1.8.2" hotcoco==1.0.1 faster-coco-eval
        ultrafast-pycocotools vernier pycocotools simplejpeg torch-hungarian==0.1.0rc0 pydantic-settings python-dotenv
        clearml furl orderedmultidict pathlib2 jsonschema referencing jsonschema-specifications rpds-py
        "pydantic==2.14.4" "pydantic-core==2.50.5" annotated-types typing-inspection kornia kornia_rs)

if [[ "${1:-}" == "wheels" ]]; then
  mkdir -p .whl && grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  for spec in "${WHEELS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d .whl "$spec" || echo "could not download $spec" >&2
  done
  du -sh .whl; exit 0
fi

export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then
  PY="$GPU_CHECK_PYTHON"
elif python3 -c "import torch" 2>/dev/null; then
  # The GPU image's python3 is itself a venv holding torch: a --system-site-packages venv made from it would not
  # see torch, so the missing packages go to a target folder on PYTHONPATH instead.
  PY="$(command -v python3)"; SITE="${GPU_CHECK_SITE:-/tmp/gpu-check-site}"
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" .whl/*.whl >>"$LOG" 2>&1 \
      || say "some wheels did not install (see log)"
  fi
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  VENV="${GPU_CHECK_VENV:-/tmp/gpu-check-venv}"
  python3 -m venv --system-site-packages "$VENV" >>"$LOG" 2>&1 || { say "venv failed"; exit 2; }
  PY="$VENV/bin/python"
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps .whl/*.whl >>"$LOG" 2>&1 || say "some wheels did not install (see log)"
  fi
  # --no-deps: never let pip replace the image's CUDA torch; missing modules are reported below instead.
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 || \
    "$PY" -m pip install -q --no-deps -e . >>"$LOG" 2>&1 || { say "pip install -e . failed (see $LOG)"; exit 2; }
fi
"$PY" - <<'PY' 2>&1 | tee -a "$LOG" >&2 || { say "imports missing: run 'bash benchmarks/gpu_check.sh wheels' here and carry .whl"; exit 3; }
import importlib, sys
missing = []
for m in ("torch", "pytorch_lightning", "rfdetr", "rfdetr.training", "rfdetr_trainer.services.train", "tensorboard"):
    try:
        importlib.import_module(m)
    except Exception as exc:
        missing.append(f"{m}: {type(exc).__name__}: {exc}")
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
if missing:
    print("\n".join(missing)); sys.exit(1)
PY

# One prepared run of benchmarks/bench_train_throughput.py: the data pipeline (--cache ram vs none) and training
# at (a) the compute-bound limit, (b) rfdetr's own train(), (c) rfdetr-trainer train (+ --cache none, --compile).
STEPS="${GPU_CHECK_STEPS:-40}"; BATCH="${GPU_CHECK_BATCH:-16}"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
COMPILE=(); [[ "${GPU_CHECK_COMPILE:-1}" == "1" ]] && COMPILE=(--compile)
"$PY" benchmarks/bench_train_throughput.py --device "${GPU_CHECK_DEVICE:-cuda}" --images $((STEPS * BATCH)) \
  --image-size "${GPU_CHECK_IMAGE:-320}" --batch "$BATCH" --res "${GPU_CHECK_RES:-384}" \
  --epochs "${GPU_CHECK_EPOCHS:-2}" --rounds "${GPU_CHECK_REPEATS:-2}" --pipeline-images "${GPU_CHECK_PIPELINE:-96}" \
  "${COMPILE[@]}" --work "$WORK" 2>>"$LOG" | tee "$OUT/gpu_check_summary.txt"
status=${PIPESTATUS[0]}
tail -1 "$OUT/gpu_check_summary.txt" > "$RESULTS"
[[ $status -eq 0 ]] || { say "bench_train_throughput failed (tail of $LOG):"; tail -20 "$LOG" >&2; exit 5; }
