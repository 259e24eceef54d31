#!/usr/bin/env bash
# Runs ON a TPU worker or the evaluator VM, in the unpacked project: make .venv and install the
# project, mount the runs bucket with gcsfuse, copy the prepared data to the local disk.
# usage: launch/tpu/worker_setup.sh tpu|cpu BUCKET [DATA_URL]
set -euo pipefail
KIND=${1:?usage: worker_setup.sh tpu|cpu BUCKET [DATA_URL]}
BUCKET=${2:?usage: worker_setup.sh tpu|cpu BUCKET [DATA_URL]}
DATA_URL=${3:-}

if [[ ! -x .venv/bin/python ]]; then
  sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
  python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
if [[ $KIND == tpu ]]; then
  .venv/bin/pip install -q -e '.[tf]' 'jax[tpu]>=0.10,<0.13'
else
  .venv/bin/pip install -q -e '.[tf]'
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
