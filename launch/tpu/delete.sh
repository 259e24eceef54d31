#!/usr/bin/env bash
# Delete the TPU VM slice TPU_NAME (and its queued resource when TPU_QUEUED=1).
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
if [[ ${TPU_QUEUED:-0} == 1 ]]; then
  run "${GCLOUD[@]}" compute tpus queued-resources delete "$TPU_NAME" "--zone=$TPU_ZONE" --force --quiet
else
  run "${GCLOUD[@]}" compute tpus tpu-vm delete "$TPU_NAME" "--zone=$TPU_ZONE" --quiet
fi
