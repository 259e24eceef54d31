#!/usr/bin/env bash
# Create the TPU VM slice TPU_NAME in TPU_ZONE and wait until it is ready.
#   TPU_TYPE     accelerator type, e.g. v4-8, v4-32 (default v4-8)
#   TPU_VERSION  runtime version (default tpu-ubuntu2204-base)
#   TPU_QUEUED=1 through a queued resource (waits for capacity), TPU_SPOT=1 spot capacity
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

TYPE=${TPU_TYPE:-v4-8}
VERSION=${TPU_VERSION:-tpu-ubuntu2204-base}
SPOT=()
if [[ ${TPU_SPOT:-0} == 1 ]]; then SPOT=(--spot); fi

if [[ ${DRY_RUN:-0} != 1 ]]; then
  state=$("${GCLOUD[@]}" compute tpus tpu-vm describe "$TPU_NAME" "--zone=$TPU_ZONE" \
    "--format=value(state)" 2>/dev/null || true)
  case $state in
    "") ;;
    READY) echo "$TPU_NAME exists in $TPU_ZONE; using it"; exit 0 ;;
    *) # a preempted spot slice (PREEMPTED, TERMINATED, ...) cannot run: make it anew
      echo "$TPU_NAME is $state; deleting it to create it again"
      bash "$(dirname "$0")/delete.sh" ;;
  esac
fi

if [[ ${TPU_QUEUED:-0} == 1 ]]; then
  run "${GCLOUD[@]}" compute tpus queued-resources create "$TPU_NAME" "--zone=$TPU_ZONE" \
    "--node-id=$TPU_NAME" "--accelerator-type=$TYPE" "--runtime-version=$VERSION" "${SPOT[@]}"
  DESCRIBE=("${GCLOUD[@]}" compute tpus queued-resources describe "$TPU_NAME" "--zone=$TPU_ZONE"
    "--format=value(state.state)")
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    run "${DESCRIBE[@]}"
  else
    until [[ $("${DESCRIBE[@]}") == ACTIVE ]]; do
      state=$("${DESCRIBE[@]}")
      case $state in
        FAILED | SUSPENDED) echo "create.sh: queued resource $TPU_NAME is $state" >&2; exit 1 ;;
      esac
      echo "waiting for $TPU_NAME: $state"
      sleep 30
    done
  fi
else
  run "${GCLOUD[@]}" compute tpus tpu-vm create "$TPU_NAME" "--zone=$TPU_ZONE" \
    "--accelerator-type=$TYPE" "--version=$VERSION" "${SPOT[@]}"
fi
