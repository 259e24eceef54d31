#!/usr/bin/env bash
# GPU check of issue 19 on one H200 (about 8 minutes; docs/performance.md says what it must show).
# Phases (GPU_CHECK_PHASES, default all four, in this order):
#   bench       `python -m bench` on ResNet-6 and ResNet-50 at 64x64, batch 1024, bfloat16, on a
#               synthetic ImageNet-64-shaped split: bare step, the trainer's loop, the plain Flax
#               loop (trainer/plain, trainer/bare), forward pass and evaluator (goals 1 and 3)
#   packing     `python -m bench.packing`: aggregate images/s of K = 1, 2, 4 trials sharing the
#               GPU, ResNet-6/18/50 (goal 2)
#   first_step  `python -m bench.first_step`: time to the first step of the 2nd trial of a
#               ResNet-50 weight-decay sweep against the 1st (goal 5)
#   study       `python -m bench.study`: images/s of every study model, measured (ResNet-6/18/50
#               from packing K=1, ViT-B/8 and EfficientNet-B0 here) or scaled by FLOPs (goal 4)
#
# The GPU machine has jax (CUDA), flax, optax, orbax-checkpoint, numpy, scikit-image and matplotlib
# but not ml-collections or filelock. Fill bench/wheels/ first, on a machine that reaches
# PyPI, from the repository root: `make gpu-wheels` (pure-Python wheels of the versions the
# project's virtualenv holds, --no-deps because everything else is already there). bench/wheels/
# is git-ignored: pass it along explicitly (the device tool: carry=["bench/wheels"]). Then, on
# the GPU machine, from the repository root:
#
#   bash bench/gpu_check.sh            # tables on stdout, JSON in $OUT (or bench-results/)
#
# Environment: PY (python, default python3), OUT (JSON folder), GPU_CHECK_PHASES,
# GPU_CHECK_MODELS (bench phase, default "resnet6 resnet50"), GPU_CHECK_PACK_MODELS (default
# "resnet6 resnet18 resnet50"), GPU_CHECK_PACK_SECONDS (default 6), GPU_CHECK_STUDY_MEASURE
# (default "vit-B/8 efficientnet-b0"), GPU_CHECK_ARGS (extra flags for python -m bench),
# GPU_CHECK_MEMORY=1 (the bench's memory part too, ResNet-6), GPU_CHECK_PROBE (models for
# python -m bench.probe afterwards, e.g. "resnet50"; default none), GPU_CHECK_TINY=1 (a tiny
# model, batch and split: checks the script end to end on a CPU in a few minutes; the numbers
# mean nothing).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PY:-python3}
RESULTS=${OUT:-bench-results}
PHASES=${GPU_CHECK_PHASES:-bench packing first_step study}
SITE=${GPU_CHECK_SITE:-/tmp/gpu-check-site}
BENCH_DIR=${GPU_CHECK_BENCH_DIR:-/tmp/gpu-check-bench}  # synthetic splits (1.6 GB) + scratch runs
mkdir -p "$RESULTS"

if [ "${GPU_CHECK_TINY:-0}" = 1 ]; then
  MODELS=${GPU_CHECK_MODELS:-resnet2}
  PACK_MODELS=${GPU_CHECK_PACK_MODELS:-resnet2}
  STUDY_MEASURE=${GPU_CHECK_STUDY_MEASURE:-resnet3}
  PACK_SECONDS=${GPU_CHECK_PACK_SECONDS:-1}
  KS=1,2
  COMMON=(--batch 16 --size 16 --width 0.0625 --data synthetic --examples 256)
  LOOP=(--steps 2 --rounds 1 --e2e-windows 2 --set train.log_every_steps=2
        --set checkpoint.every_steps=3 --set eval.batch_size=200 --set perceptual.batch_size=4
        --set perceptual.frequency_examples=8)
  FIRST=(--model resnet2 --set model.width=0.0625 --set data.image_size=16 --set train.batch_size=16
         --set train.epochs=0.1 --set eval.batch_size=200)
  STUDY=(--models "resnet2,resnet3,resnet6,vit-Ti/8")
else
  MODELS=${GPU_CHECK_MODELS:-resnet6 resnet50}
  PACK_MODELS=${GPU_CHECK_PACK_MODELS:-resnet6 resnet18 resnet50}
  STUDY_MEASURE=${GPU_CHECK_STUDY_MEASURE:-vit-B/8 efficientnet-b0}
  PACK_SECONDS=${GPU_CHECK_PACK_SECONDS:-6}
  KS=1,2,4
  COMMON=(--batch 1024 --size 64 --width 1 --dtype bfloat16 --data synthetic)
  LOOP=()
  # ResNet-50, the paper recipe, on the synthetic split the bench phase wrote: 13 steps each.
  FIRST=(--preset paper --model resnet50 --set data.name=imagenet64 --set data.num_classes=1000
         --set "data.prepared_dir=$BENCH_DIR/synthetic" --set data.image_size=64
         --set train.batch_size=1024 --set model.dtype=bfloat16 --set train.epochs=0.1)
  STUDY=()
fi

if ! "$PY" -c "import ml_collections, filelock" 2>/dev/null; then
  if ! ls bench/wheels/*.whl >/dev/null 2>&1; then
    echo "gpu_check: ml_collections or filelock is missing and bench/wheels/ holds no wheels; fill it (where PyPI is reachable) with 'make gpu-wheels'" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" bench/wheels/*.whl || exit 2
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# The bench's own parts share compiles through one cache (the sweep of first_step has its own).
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/gpu-check-jax-cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader || true
"$PY" -c "import jax, flax, optax, orbax.checkpoint as o, numpy; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, 'numpy', numpy.__version__, jax.devices())" || exit 1

status=0
t0=$(date +%s)
phase() { echo "== $1 ($(( $(date +%s) - t0 )) s in)"; }
has() { [[ " $PHASES " == *" $1 "* ]]; }

if has bench; then
  for model in $MODELS; do
    parts=bare,e2e,forward,evaluator
    mem=()
    if [ "${GPU_CHECK_MEMORY:-0}" = 1 ] && [ "$model" = resnet6 ]; then
      parts=$parts,memory
      mem=(--memory-examples 32768)  # splits of 32,768 and 65,536 images, host input
    fi
    phase "bench $model"
    # shellcheck disable=SC2086  # GPU_CHECK_ARGS is a list of flags
    "$PY" -m bench --model "$model" "${COMMON[@]}" "${LOOP[@]}" --bench-dir "$BENCH_DIR" \
      --parts "$parts" "${mem[@]}" --out "$RESULTS/gpu-$model.json" ${GPU_CHECK_ARGS:-} || status=1
    tar czf "$RESULTS/logs-$model.tgz" -C "$BENCH_DIR" logs 2>/dev/null || true  # each part's output
  done
fi

rates=()
if has packing; then
  for model in $PACK_MODELS; do
    phase "packing $model"
    "$PY" -m bench.packing --model "$model" "${COMMON[@]}" --ks "$KS" --seconds "$PACK_SECONDS" \
      --bench-dir "$BENCH_DIR" --out "$RESULTS/packing-$model.json" || status=1
    rate=$("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['rows'][0]['aggregate_images_per_sec'])" "$RESULTS/packing-$model.json" 2>/dev/null) \
      && rates+=(--rate "$model=$rate")
  done
fi

if has first_step; then
  phase "first step of a 2nd trial"
  JAX_COMPILATION_CACHE_DIR="" "$PY" -m bench.first_step "${FIRST[@]}" \
    --runs-dir "$BENCH_DIR/runs" --out "$RESULTS/first-step.json" || status=1
fi

if has study; then
  phase "study models"
  "$PY" -m bench.study "${COMMON[@]}" "${STUDY[@]}" "${rates[@]}" \
    --measure "$(echo "$STUDY_MEASURE" | tr ' ' ',')" --bench-dir "$BENCH_DIR" \
    --out "$RESULTS/study.json" || status=1
fi

# Where the evaluator's time goes beyond a bare forward pass, and its style distance's accuracy
# on this backend (bench/probe.py), when GPU_CHECK_PROBE names models (e.g. resnet50).
for model in ${GPU_CHECK_PROBE:-}; do
  phase "eval probe $model"
  "$PY" -m bench.probe --model "$model" --out "$RESULTS/probe-$model.json" || status=1
done
phase "done, exit $status"
exit $status
