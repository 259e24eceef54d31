#!/usr/bin/env bash
# Put this project (the working tree: tracked and untracked, not ignored files, plus
# BUILD_INFO.json with the git commit: launch/tpu_build.py) on every worker of TPU_NAME and
# install it there (launch/tpu/worker_setup.sh: venv, jax[tpu], gcsfuse mount of GCS_BUCKET,
# prepared data from DATA_URL).
#   GCS_BUCKET     bucket holding the runs (mounted at /gcs/<bucket> on every worker)
#   DATA_URL       gs:// folder of prepared splits, copied to each worker's disk ('' = none)
#   TARBALL        where the tarball goes; TARBALL_READY=1: it is packed already (the launcher
#                  packs once for all slices)
#   PYTHON         the interpreter that packs it (default: the project's .venv, else python3)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
: "${GCS_BUCKET:?set GCS_BUCKET (the bucket for the runs)}"

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TARBALL=${TARBALL:-/tmp/perceptual-sweeps-$TPU_NAME.tar.gz}
PY=${PYTHON:-$REPO/.venv/bin/python}
[[ -x $PY ]] || PY=python3
if [[ ${TARBALL_READY:-0} == 1 ]]; then
  :
elif [[ ${DRY_RUN:-0} == 1 ]]; then
  echo "# pack $REPO (git ls-files -co --exclude-standard, and BUILD_INFO.json) into $TARBALL"
else
  (cd "$REPO" && "$PY" -m launch.tpu_build "$TARBALL")
fi
run "${GCLOUD[@]}" compute tpus tpu-vm scp "$TARBALL" "$TPU_NAME:perceptual-sweeps.tar.gz" \
  "--zone=$TPU_ZONE" --worker=all
run "${TPU_SSH[@]}" --worker=all "--command=mkdir -p $REMOTE_DIR && tar -xzf perceptual-sweeps.tar.gz -C $REMOTE_DIR && cd $REMOTE_DIR && $(quote bash launch/tpu/worker_setup.sh tpu "$GCS_BUCKET" "${DATA_URL:-}")"
