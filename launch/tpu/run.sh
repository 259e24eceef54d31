#!/usr/bin/env bash
# Run one command on the workers of TPU_NAME (WORKER: all, or one worker's index), in the
# project folder there. The launcher sends `launch.tpu_worker start ... -- TRAINER_ARGV`, which
# starts the trainer detached and returns at once.
# usage: launch/tpu/run.sh WORKER ARGV...   (ARGV relative to the project folder on the workers)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
[[ $# -gt 1 ]] || { echo "usage: run.sh all|WORKER ARGV..." >&2; exit 2; }
WORKER=$1
shift
[[ $WORKER == all || $WORKER =~ ^[0-9]+$ ]] \
  || { echo "run.sh: worker '$WORKER' is not allowed; expected all or an index" >&2; exit 2; }
run "${TPU_SSH[@]}" "--worker=$WORKER" \
  "--command=cd $REMOTE_DIR && PSWEEPS_DATA_DIR=\$HOME/psweeps-data $(quote "$@")"
