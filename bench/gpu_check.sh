#!/usr/bin/env bash
# GPU check of `make bench`: ResNet-6 and ResNet-50 at 64x64, batch 1024, bfloat16, on a synthetic
# ImageNet-64-shaped prepared split (memory-mapped .npy, 131,072 images), then one table each.
#
# The GPU machine has jax (CUDA), flax, optax, orbax-checkpoint, numpy, scikit-image and matplotlib
# but not ml-collections. Fill bench/wheels/ first, on a machine that reaches PyPI, from
# the repository root: `make gpu-wheels` (pure-Python wheels of the versions the project's
# virtualenv holds, --no-deps because everything else is already there), or by hand:
#
#   python3 -m pip download --no-deps --only-binary=:all: -d bench/wheels \
#       ml-collections==1.1.0
#
# bench/wheels/ is git-ignored: pass it along explicitly (the device tool: carry=["bench/wheels"]).
# Then, on the GPU machine, from the repository root:
#
#   bash bench/gpu_check.sh            # tables on stdout, JSON in $OUT (or bench-results/)
#
# Budget: about 5 minutes on one H200 (docs/performance.md); compiles dominate, so a persistent
# compilation cache lets the parts share them.
# Environment: PY (python, default python3), OUT (JSON folder), GPU_CHECK_MODELS (default
# "resnet6 resnet50"), GPU_CHECK_ARGS (extra flags for python -m bench),
# GPU_CHECK_PROBE (models for python -m bench.probe afterwards, e.g. "resnet50"; default none).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PY:-python3}
RESULTS=${OUT:-bench-results}
MODELS=${GPU_CHECK_MODELS:-resnet6 resnet50}
SITE=${GPU_CHECK_SITE:-/tmp/gpu-check-site}
BENCH_DIR=${GPU_CHECK_BENCH_DIR:-/tmp/gpu-check-bench}  # synthetic splits (1.6 GB) + scratch runs
mkdir -p "$RESULTS"

if ! "$PY" -c "import ml_collections" 2>/dev/null; then
  if ! ls bench/wheels/*.whl >/dev/null 2>&1; then
    echo "gpu_check: ml_collections is missing and bench/wheels/ holds no wheels; fill it (where PyPI is reachable) with 'make gpu-wheels' or:" >&2
    echo "  python3 -m pip download --no-deps --only-binary=:all: -d bench/wheels ml-collections==1.1.0" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" bench/wheels/*.whl || exit 2
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/gpu-check-jax-cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader || true
"$PY" -c "import jax, flax, optax, orbax.checkpoint as o, numpy; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, 'numpy', numpy.__version__, jax.devices())" || exit 1

status=0
for model in $MODELS; do
  parts=bare,e2e,forward,evaluator
  mem=()
  if [ "$model" = "resnet6" ]; then  # memory flatness once, on the fast model
    parts=$parts,memory
    mem=(--memory-examples 32768)    # splits of 32,768 and 65,536 images, host input
  fi
  echo "== $model"
  start=$(date +%s)
  # shellcheck disable=SC2086  # GPU_CHECK_ARGS is a list of flags
  "$PY" -m bench --model "$model" --batch 1024 --size 64 --width 1 --dtype bfloat16 \
    --data synthetic --bench-dir "$BENCH_DIR" --parts "$parts" "${mem[@]}" \
    --out "$RESULTS/gpu-$model.json" ${GPU_CHECK_ARGS:-} || status=1
  echo "== $model took $(( $(date +%s) - start )) s"
  tar czf "$RESULTS/logs-$model.tgz" -C "$BENCH_DIR" logs 2>/dev/null || true  # each part's output
done
# Where the evaluator's time goes beyond a bare forward pass, and its style distance's accuracy
# on this backend (bench/probe.py), when GPU_CHECK_PROBE names models (e.g. resnet50).
for model in ${GPU_CHECK_PROBE:-}; do
  echo "== eval probe $model"
  "$PY" -m bench.probe --model "$model" --out "$RESULTS/probe-$model.json" || status=1
done
exit $status
