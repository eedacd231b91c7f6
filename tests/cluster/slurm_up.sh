#!/usr/bin/env bash
# Start a throwaway one-node SLURM cluster on this machine, for the cluster test and for trying profiles/ by hand.
#
#   tests/cluster/slurm_up.sh [DIR]      # DIR defaults to /tmp/trtverify-slurm; prints SLURM_CONF=DIR/slurm.conf
#   export SLURM_CONF=DIR/slurm.conf     # (or: . DIR/env) then sbatch, squeue, sinfo and snakemake use it
#   tests/cluster/slurm_down.sh [DIR]    # stops every daemon started here and removes DIR
#
# Everything lives in DIR: slurm.conf, its own munge key and socket (the system's /etc/munge and /etc/slurm are
# neither read nor changed), state, spool, pid and log files; the one thing outside is the link /run/slurm/conf
# (see below). Needs root and the Debian packages slurm-wlm and munge (`make system-deps` installs them). Running it
# again first stops what an earlier run left behind, on DIR or holding the ports.
#
# Settings (environment): SLURM_TEST_PORT (slurmctld's port, slurmd uses the next one; default 6817),
# SLURM_TEST_WAIT (seconds to wait for the node to become idle; default 60).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-/tmp/trtverify-slurm}
CTLD_PORT=${SLURM_TEST_PORT:-6817}
SLURMD_PORT=$((CTLD_PORT + 1))
WAIT=${SLURM_TEST_WAIT:-60}
MARKER=.trtverify-slurm    # a directory holding this file was made by this script; slurm_down.sh checks for it
# Inside a job, snakemake-executor-plugin-slurm's job step runs srun with every SLURM_* variable removed, SLURM_CONF
# included, so srun must find its configuration as on a real compute node: at /run/slurm/conf/slurm.conf, where a
# configless slurmd keeps its copy. This link points there at DIR while the cluster runs.
RUN_CONF=/run/slurm/conf

die() { echo "slurm_up: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root: its slurmd runs every job as root"
for bin in munged slurmctld slurmd sinfo scontrol squeue sbatch srun ss; do
  command -v "$bin" >/dev/null || die "'$bin' not found; install Debian's slurm-wlm and munge (make system-deps)"
done

# --- What an earlier run left: stop our own clusters, refuse to touch anything else. ---
[ -e "$DIR/$MARKER" ] && "$HERE/slurm_down.sh" "$DIR"
port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o "pid=[0-9]*" | head -1 | cut -d= -f2 || true; }
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  pid=$(port_owner "$port")
  [ -n "$pid" ] || continue
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  old=$(sed -n 's/.* -f \([^ ]*\)\/slurm\.conf.*/\1/p' <<<"$cmd")
  if [ -z "$old" ] || [ ! -e "$old/$MARKER" ]; then
    die "port $port is in use by pid $pid ($cmd); set SLURM_TEST_PORT to another port"
  fi
  echo "slurm_up: stopping the cluster an earlier run left in $old (pid $pid holds port $port)" >&2
  "$HERE/slurm_down.sh" "$old"
done
if [ -L "$RUN_CONF" ]; then
  old=$(readlink "$RUN_CONF")
  if [ -e "$old/$MARKER" ]; then "$HERE/slurm_down.sh" "$old"; else rm -f "$RUN_CONF"; fi
fi
[ ! -e "$RUN_CONF" ] || die "$RUN_CONF exists and is not this script's link: another SLURM is configured here"

# --- A fresh directory. ---
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
[ -z "$(ls -A "$DIR")" ] || die "$DIR exists and is not empty; give an empty or new directory"
touch "$DIR/$MARKER"
chmod 0755 "$DIR"   # munged refuses sockets in group- or world-writable directories
mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log"
chmod 0700 "$DIR/munge"

fail() {
  echo "slurm_up: $*" >&2
  for log in "$DIR"/log/*.log; do echo "--- $log" >&2; tail -n 15 "$log" >&2 || true; done
  "$HERE/slurm_down.sh" "$DIR" || true
  exit 1
}

# --- munge: a key of our own (1 KiB of random bytes, as mungekey makes) and a daemon on a socket in DIR. ---
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
  || fail "munged did not start"

# --- slurm.conf: one node named after this machine, reached over loopback whatever the host name resolves to. ---
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)   # headroom, so slurmd never drains it
cat >"$DIR/slurm.conf" <<EOF
# Written by tests/cluster/slurm_up.sh: a one-node test cluster, everything as root, no accounting.
ClusterName=trtverify
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/plugstack.conf
# No cgroups in a container: track processes by parent id, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
# No slurmdbd: sacct cannot answer, so executors ask squeue, which keeps finished jobs for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
: >"$DIR/plugstack.conf"
echo "export SLURM_CONF=$DIR/slurm.conf" >"$DIR/env"
export SLURM_CONF="$DIR/slurm.conf"
mkdir -p "$(dirname "$RUN_CONF")"
ln -s "$DIR" "$RUN_CONF"

# --- The daemons, then a bounded wait for the node to report idle (slurmd registers within seconds). ---
slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N "$NODE" || fail "slurmd did not start"
deadline=$((SECONDS + WAIT))
state=""
until [ "$state" = idle ]; do
  [ $SECONDS -lt $deadline ] || fail "node $NODE not idle after ${WAIT}s (state: '${state:-no answer}')"
  sleep 1
  state=$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -1 || true)
done
echo "slurm_up: node $NODE idle ($CPUS CPUs, ${MEM_MB} MB) in $DIR" >&2
echo "SLURM_CONF=$SLURM_CONF"
