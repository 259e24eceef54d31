#!/usr/bin/env bash
# Bring the slice TPU_NAME up: create it (or reuse it when ready, or make a lost one anew), then
# put the project on every worker. The launcher runs one per slice, all at once.
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
bash "$(dirname "$0")/create.sh"
bash "$(dirname "$0")/setup.sh"
