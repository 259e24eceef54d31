#!/usr/bin/env bash
# Stop the daemons that tests/slurm/up.sh started (by pid, newest first), waiting for each.
# usage: tests/slurm/down.sh ROOT
set -euo pipefail

ROOT=${1:?usage: down.sh ROOT}
[[ -f $ROOT/pid/started ]] || exit 0
# SLURM_CONF for scancel below
export SLURM_CONF=$ROOT/slurm.conf
scancel --full --quiet --user="$(id -un)" 2>/dev/null || true

mapfile -t pidfiles < <(tac "$ROOT/pid/started")
for f in "${pidfiles[@]}"; do
  [[ -s $f ]] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
done
: >"$ROOT/pid/started"
echo "slurm down"
