#!/usr/bin/env bash
# Run one command on every worker of TPU_NAME at once (the trainer: each worker runs the same
# argv and jax.distributed.initialize() joins them), streaming their output here.
# usage: launch/tpu/run.sh ARGV...   (ARGV relative to the project folder on the workers)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
[[ $# -gt 0 ]] || { echo "usage: run.sh ARGV..." >&2; exit 2; }
run "${TPU_SSH[@]}" --worker=all \
  "--command=cd $REMOTE_DIR && PSWEEPS_DATA_DIR=\$HOME/psweeps-data $(quote "$@")"
