# shellcheck shell=bash
# Shared by launch/tpu/*.sh (sourced). Settings come from the environment:
#   TPU_NAME TPU_ZONE        the TPU VM (slice) and its zone (required)
#   TPU_PROJECT              Google Cloud project ('' = gcloud's configured one)
#   DRY_RUN=1                print every command (shell-quoted, one per line) instead of running it
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME (the TPU VM name)}"
: "${TPU_ZONE:?set TPU_ZONE (e.g. us-central2-b)}"

GCLOUD=(gcloud)
if [[ -n ${TPU_PROJECT:-} ]]; then GCLOUD+=("--project=$TPU_PROJECT"); fi
# shellcheck disable=SC2034,SC2088  # used by the scripts sourcing this; ~ is for the remote shell
REMOTE_DIR='~/perceptual-sweeps'
# shellcheck disable=SC2034  # used by the scripts that source this file
TPU_SSH=("${GCLOUD[@]}" compute tpus tpu-vm ssh "$TPU_NAME" "--zone=$TPU_ZONE")

# run CMD ARGS...: run it, or with DRY_RUN=1 print it shell-quoted.
run() {
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    local out
    printf -v out '%q ' "$@"
    echo "${out% }"
  else
    "$@"
  fi
}

# quote ARGS...: one shell-quoted string, for a --command run by the remote shell.
quote() {
  local out
  printf -v out '%q ' "$@"
  echo "${out% }"
}
