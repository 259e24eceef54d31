#!/usr/bin/env bash
# Copy a sweep's run records from the bucket to a local folder (status, metrics, perceptual
# scores, report; not the checkpoints). usage: launch/tpu/sync.sh gs://BUCKET/runs/SWEEP LOCAL_DIR
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
SRC=${1:?usage: sync.sh gs://BUCKET/runs/SWEEP LOCAL_DIR}
DST=${2:?usage: sync.sh gs://BUCKET/runs/SWEEP LOCAL_DIR}
run mkdir -p "$DST"
run "${GCLOUD[@]}" storage rsync --recursive '--exclude=.*/(checkpoints|tensorboard)/.*' "$SRC" "$DST"
