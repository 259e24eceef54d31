#!/usr/bin/env bash
# Bring up a real single-node Slurm (slurmctld + slurmd + munged) on this machine for tests.
#
# usage: tests/slurm/up.sh ROOT
#   ROOT: an empty scratch folder; it receives slurm.conf, state, logs, pid files, bin/sacct
#         and env.sh (source it to use the cluster: SLURM_CONF and PATH).
# Needs root and apt (Debian packages slurmctld slurmd slurm-client munge; installed when missing).
# There is no systemd here: the daemons are started directly and stopped by tests/slurm/down.sh,
# which kills only the pids this script started.
set -euo pipefail

ROOT=${1:?usage: up.sh ROOT}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)

if [[ $(id -u) -ne 0 ]]; then
  echo "up.sh: needs root (to install packages and run slurmd); running as $(id -un)" >&2
  exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >"$ROOT/apt.log" 2>&1 \
    || { apt-get update -q >>"$ROOT/apt.log" 2>&1 \
      && apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >>"$ROOT/apt.log" 2>&1; } \
    || { echo "up.sh: apt-get install of slurm failed; see $ROOT/apt.log" >&2; exit 2; }
fi

mkdir -p "$ROOT"/{state/ctld,state/d,log,pid,bin}
: >"$ROOT/pid/started"

# munge: systemd's RuntimeDirectory would create /run/munge; do it by hand.
mkdir -p /run/munge
chown munge:munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  runuser -u munge -- mungekey --create >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/mungekey -c
fi
if ! munge -n </dev/null >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
  echo "/run/munge/munged.pid" >>"$ROOT/pid/started"
fi

CTLD_PORT=${SLURM_TEST_CTLD_PORT:-6817}
D_PORT=${SLURM_TEST_D_PORT:-6818}
for port in "$CTLD_PORT" "$D_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "up.sh: port $port is in use (another Slurm running?); stop it or set SLURM_TEST_CTLD_PORT/SLURM_TEST_D_PORT" >&2
    exit 1
  fi
done

HN=$(hostname -s)
MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
CONF="$ROOT/slurm.conf"
cat >"$CONF" <<EOC
ClusterName=pstest
SlurmctldHost=$HN(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$ROOT/state/ctld
SlurmdSpoolDir=$ROOT/state/d
SlurmctldPidFile=$ROOT/pid/slurmctld.pid
SlurmdPidFile=$ROOT/pid/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
KillWait=30
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$HN NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOC
export SLURM_CONF=$CONF

# No accounting database here, so no real sacct: submitit reads job states through a shim that
# answers from `scontrol show job -o` (test cluster only; a real cluster has sacct).
install -m 755 "$HERE/sacct" "$ROOT/bin/sacct"

cat >"$ROOT/env.sh" <<EOE
export SLURM_CONF=$CONF
export PATH=$ROOT/bin:\$PATH
EOE

/usr/sbin/slurmctld -f "$CONF"
echo "$ROOT/pid/slurmctld.pid" >>"$ROOT/pid/started"
/usr/sbin/slurmd -f "$CONF"
echo "$ROOT/pid/slurmd.pid" >>"$ROOT/pid/started"

for _ in $(seq 300); do
  state=$(sinfo -h -o %T 2>/dev/null || true)
  [[ $state == idle ]] && { echo "slurm up: $HN idle, SLURM_CONF=$CONF"; exit 0; }
  sleep 0.1
done
echo "up.sh: node did not become idle (state '${state:-none}'); see $ROOT/log" >&2
exit 1
