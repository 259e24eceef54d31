#!/usr/bin/env bash
# Print "NAME STATE" for every TPU VM in TPU_ZONE, or with TPU_QUEUED=1 every queued resource
# (one call for all the launcher's slices). VM states: READY, CREATING, PREEMPTED, TERMINATED,
# STOPPED, ...; queued resource states: ACTIVE, WAITING_FOR_RESOURCES, SUSPENDED, FAILED, ...
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
if [[ ${TPU_QUEUED:-0} == 1 ]]; then
  run "${GCLOUD[@]}" compute tpus queued-resources list "--zone=$TPU_ZONE" \
    '--format=value(name.basename(),state.state)'
else
  run "${GCLOUD[@]}" compute tpus tpu-vm list "--zone=$TPU_ZONE" \
    '--format=value(name.basename(),state)'
fi
