#!/usr/bin/env bash
# Create the TPU VM slice TPU_NAME in TPU_ZONE and wait until it is ready; a slice that exists
# and is ready is used as it is, one that is preempted, stopped or failed is deleted first.
#   TPU_TYPE     accelerator type, e.g. v4-32, v5litepod-16, v6e-8
#   TPU_VERSION  runtime version (python -m launch.tpu_types TYPE prints the type's)
#   TPU_QUEUED=1 through a queued resource (waits for capacity), TPU_SPOT=1 spot capacity
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
: "${TPU_TYPE:?set TPU_TYPE (e.g. v4-32)}"
: "${TPU_VERSION:?set TPU_VERSION (python -m launch.tpu_types TPU_TYPE prints it)}"

SPOT=()
if [[ ${TPU_SPOT:-0} == 1 ]]; then SPOT=(--spot); fi
QR=("${GCLOUD[@]}" compute tpus queued-resources)

if [[ ${DRY_RUN:-0} != 1 ]]; then
  if [[ ${TPU_QUEUED:-0} == 1 ]]; then
    state=$("${QR[@]}" describe "$TPU_NAME" "--zone=$TPU_ZONE" "--format=value(state.state)" \
      2>/dev/null || true)
    case $state in
      "") ;;
      ACTIVE) echo "$TPU_NAME exists in $TPU_ZONE; using it"; exit 0 ;;
      ACCEPTED | PROVISIONING | WAITING_FOR_RESOURCES | CREATING) state=waiting ;;
      *) # a preempted spot slice (SUSPENDED), a FAILED request, ...: make it anew
        echo "$TPU_NAME is $state; deleting it to create it again"
        bash "$(dirname "$0")/delete.sh"
        state="" ;;
    esac
  else
    state=$("${GCLOUD[@]}" compute tpus tpu-vm describe "$TPU_NAME" "--zone=$TPU_ZONE" \
      "--format=value(state)" 2>/dev/null || true)
    while [[ $state =~ ^(CREATING|STARTING|RESTARTING|REPAIRING)$ ]]; do
      echo "waiting for $TPU_NAME: $state"
      sleep "${TPU_WAIT_S:-30}"
      state=$("${GCLOUD[@]}" compute tpus tpu-vm describe "$TPU_NAME" "--zone=$TPU_ZONE" \
        "--format=value(state)" 2>/dev/null || true)
    done
    case $state in
      "") ;;
      READY) echo "$TPU_NAME exists in $TPU_ZONE; using it"; exit 0 ;;
      *) # PREEMPTED, TERMINATED, STOPPED, ...: it cannot run; make it anew
        echo "$TPU_NAME is $state; deleting it to create it again"
        bash "$(dirname "$0")/delete.sh"
        state="" ;;
    esac
  fi
fi

if [[ ${TPU_QUEUED:-0} == 1 ]]; then
  if [[ ${state:-} != waiting ]]; then
    run "${QR[@]}" create "$TPU_NAME" "--zone=$TPU_ZONE" "--node-id=$TPU_NAME" \
      "--accelerator-type=$TPU_TYPE" "--runtime-version=$TPU_VERSION" "${SPOT[@]}"
  fi
  DESCRIBE=("${QR[@]}" describe "$TPU_NAME" "--zone=$TPU_ZONE" "--format=value(state.state)")
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    run "${DESCRIBE[@]}"
  else
    until [[ $("${DESCRIBE[@]}") == ACTIVE ]]; do
      state=$("${DESCRIBE[@]}")
      case $state in
        FAILED | SUSPENDED) echo "create.sh: queued resource $TPU_NAME is $state" >&2; exit 1 ;;
      esac
      echo "waiting for $TPU_NAME: $state"
      sleep "${TPU_WAIT_S:-30}"
    done
  fi
else
  run "${GCLOUD[@]}" compute tpus tpu-vm create "$TPU_NAME" "--zone=$TPU_ZONE" \
    "--accelerator-type=$TPU_TYPE" "--version=$TPU_VERSION" "${SPOT[@]}"
fi
