#!/usr/bin/env bash
# The evaluator's own CPU VM EVAL_VM (in TPU_ZONE): create | setup | run ARGV... | delete
#   EVAL_MACHINE  machine type (default e2-standard-8); GCS_BUCKET, DATA_URL as for setup.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
: "${EVAL_VM:?set EVAL_VM (the evaluator VM name)}"
ACTION=${1:?usage: eval_vm.sh create|setup|run ARGV...|delete}
shift
SSH=("${GCLOUD[@]}" compute ssh "$EVAL_VM" "--zone=$TPU_ZONE")

case $ACTION in
  create)
    if [[ ${DRY_RUN:-0} != 1 ]] \
      && "${GCLOUD[@]}" compute instances describe "$EVAL_VM" "--zone=$TPU_ZONE" >/dev/null 2>&1; then
      echo "$EVAL_VM exists in $TPU_ZONE; using it"
      exit 0
    fi
    run "${GCLOUD[@]}" compute instances create "$EVAL_VM" "--zone=$TPU_ZONE" \
      "--machine-type=${EVAL_MACHINE:-e2-standard-8}" --image-family=ubuntu-2204-lts \
      --image-project=ubuntu-os-cloud --boot-disk-size=100GB --scopes=cloud-platform
    ;;
  setup)
    : "${GCS_BUCKET:?set GCS_BUCKET}"
    TARBALL=${TARBALL:-/tmp/perceptual-sweeps-$TPU_NAME.tar.gz}
    run "${GCLOUD[@]}" compute scp "$TARBALL" "$EVAL_VM:perceptual-sweeps.tar.gz" "--zone=$TPU_ZONE"
    run "${SSH[@]}" "--command=mkdir -p $REMOTE_DIR && tar -xzf perceptual-sweeps.tar.gz -C $REMOTE_DIR && cd $REMOTE_DIR && $(quote bash launch/tpu/worker_setup.sh cpu "$GCS_BUCKET" "${DATA_URL:-}")"
    ;;
  run)
    [[ $# -gt 0 ]] || { echo "usage: eval_vm.sh run ARGV..." >&2; exit 2; }
    run "${SSH[@]}" "--command=cd $REMOTE_DIR && PSWEEPS_DATA_DIR=\$HOME/psweeps-data $(quote "$@")"
    ;;
  delete)
    run "${GCLOUD[@]}" compute instances delete "$EVAL_VM" "--zone=$TPU_ZONE" --quiet
    ;;
  *)
    echo "eval_vm.sh: unknown action '$ACTION'; allowed: create, setup, run, delete" >&2
    exit 2
    ;;
esac
