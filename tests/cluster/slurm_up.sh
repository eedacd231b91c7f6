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
# again first stops what an earlier run left behind; while another live process's cluster runs, it waits.
#
# Settings (environment): SLURM_TEST_PORT (slurmctld's port, slurmd uses the next one; default 6817),
# SLURM_TEST_WAIT (seconds to wait for the node to become idle; default 60), SLURM_TEST_OWNER (the pid whose
# cluster this is; default the caller's), SLURM_TEST_BUSY_WAIT (seconds to wait for another one; default 600).
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

# --- One test cluster at a time on a machine: the ports and /run/slurm/conf are shared. A cluster whose owner (the
# process that started it: SLURM_TEST_OWNER, default this script's parent) is alive is in use: wait, bounded, for it
# to be stopped. One whose owner is gone was left behind (a killed test): stop it. Anything else on the ports: refuse.
OWNER=${SLURM_TEST_OWNER:-$PPID}
BUSY_WAIT=${SLURM_TEST_BUSY_WAIT:-600}
mkdir -p /run/lock
exec 9>/run/lock/trtverify-slurm.lock
flock -w "$BUSY_WAIT" 9 || die "another slurm_up.sh held /run/lock/trtverify-slurm.lock for ${BUSY_WAIT}s"
# (The daemons below are started with fd 9 closed, so the lock ends with this script.)

port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o "pid=[0-9]*" | head -1 | cut -d= -f2 || true; }
conf_dir_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | sed -n 's/.* -f \([^ ]*\)\/slurm\.conf.*/\1/p'; }
test_clusters() {   # directories of test clusters that may still run
  local port pid
  [ -e "$DIR/$MARKER" ] && echo "$DIR"
  [ -L "$RUN_CONF" ] && readlink "$RUN_CONF"
  for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    pid=$(port_owner "$port")
    [ -n "$pid" ] && conf_dir_of "$pid"
  done
  return 0
}
deadline=$((SECONDS + BUSY_WAIT))
while :; do
  for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    pid=$(port_owner "$port")
    old=${pid:+$(conf_dir_of "$pid")}
    if [ -n "$pid" ] && { [ -z "$old" ] || [ ! -e "$old/$MARKER" ]; }; then
      die "port $port is in use by pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")); set SLURM_TEST_PORT"
    fi
  done
  busy=""
  for old in $(test_clusters | sort -u); do
    if [ ! -e "$old/$MARKER" ]; then   # a link left to a directory that is gone
      [ "$(readlink "$RUN_CONF")" = "$old" ] && rm -f "$RUN_CONF"
      continue
    fi
    owner=$(cat "$old/owner" 2>/dev/null || true)
    if [ -n "$owner" ] && [ "$owner" != "$OWNER" ] && kill -0 "$owner" 2>/dev/null; then
      busy="$old (started by pid $owner: $(ps -o args= -p "$owner" | cut -c1-60))"
      continue
    fi
    echo "slurm_up: stopping the test cluster left in $old" >&2
    "$HERE/slurm_down.sh" "$old"
  done
  [ -n "$busy" ] || break
  [ $SECONDS -lt $deadline ] || die "the test cluster in $busy is in use; gave up waiting after ${BUSY_WAIT}s"
  [ -n "${said:-}" ] || echo "slurm_up: waiting for the test cluster in $busy to be stopped" >&2
  said=1
  sleep 2
done
[ ! -e "$RUN_CONF" ] || die "$RUN_CONF exists and is not this script's link: another SLURM is configured here"

# --- A fresh directory. ---
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
[ -z "$(ls -A "$DIR")" ] || die "$DIR exists and is not empty; give an empty or new directory"
touch "$DIR/$MARKER"
echo "$OWNER" >"$DIR/owner"
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
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" 9>&- \
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
slurmctld -c -f "$SLURM_CONF" 9>&- || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N "$NODE" 9>&- || fail "slurmd did not start"
deadline=$((SECONDS + WAIT))
state=""
until [ "$state" = idle ]; do
  [ $SECONDS -lt $deadline ] || fail "node $NODE not idle after ${WAIT}s (state: '${state:-no answer}')"
  sleep 1
  state=$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -1 || true)
done
echo "slurm_up: node $NODE idle ($CPUS CPUs, ${MEM_MB} MB) in $DIR" >&2
echo "SLURM_CONF=$SLURM_CONF"
