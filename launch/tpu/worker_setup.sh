#!/usr/bin/env bash
# Runs ON a TPU worker or the evaluator VM, in the unpacked project: make .venv and install the
# project, mount the runs bucket with gcsfuse, copy the prepared data to the local disk.
# usage: launch/tpu/worker_setup.sh tpu|cpu BUCKET [DATA_URL]
set -euo pipefail
KIND=${1:?usage: worker_setup.sh tpu|cpu BUCKET [DATA_URL]}
BUCKET=${2:?usage: worker_setup.sh tpu|cpu BUCKET [DATA_URL]}
DATA_URL=${3:-}

# The project needs Python >= 3.11; the TPU VM images are Ubuntu 22.04, whose python3 is 3.10.
# Take a python3.11+ that is there, else uv's standalone build (what vLLM's TPU guide installs).
if [[ ! -x .venv/bin/python ]]; then
  PY=""
  for c in python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY=$c
      break
    fi
  done
  if [[ -n $PY ]]; then
    "$PY" -m venv .venv 2>/dev/null || {
      sudo apt-get update -q
      sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$(basename "$PY")-venv"
      "$PY" -m venv .venv
    }
  else
    python3 -m pip install -q --user uv
    "$HOME/.local/bin/uv" venv --seed --python 3.12 .venv
  fi
fi
.venv/bin/pip install -q --upgrade pip
if [[ $KIND == tpu ]]; then
  .venv/bin/pip install -q -e . 'jax[tpu]>=0.10,<0.13'  # no TensorFlow: events need none
else
  .venv/bin/pip install -q -e .
fi

# The trainer and evaluator write plain paths; gcsfuse gives them the bucket as a folder.
if ! command -v gcsfuse >/dev/null; then
  release=$(lsb_release -c -s)
  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
    | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
  echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-$release main" \
    | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null
  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcsfuse
fi
MOUNT=/gcs/$BUCKET
if ! mountpoint -q "$MOUNT"; then
  sudo mkdir -p "$MOUNT" && sudo chown "$(id -u):$(id -g)" "$MOUNT"
  gcsfuse --implicit-dirs "$BUCKET" "$MOUNT"
fi

if [[ -n $DATA_URL ]]; then
  mkdir -p "$HOME/psweeps-data"
  gcloud storage rsync --recursive "$DATA_URL" "$HOME/psweeps-data"
fi
echo "worker ready: $(hostname) $KIND, runs bucket at $MOUNT"
