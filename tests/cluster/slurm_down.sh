#!/usr/bin/env bash
# Stop the test cluster tests/cluster/slurm_up.sh started in DIR (default /tmp/trtverify-slurm) and remove DIR.
#
# Cancels its jobs first (slurmd leaves running jobs alive when it stops), then stops slurmd, slurmctld and munged,
# each by the pid in its pid file and only if that pid is still the daemon we started, then any process left in
# slurmd's session (job steps it forked). Set SLURM_TEST_KEEP=1 to keep DIR (logs, state) for a post-mortem.
# Safe to run twice, or on a directory whose start failed half-way.
set -uo pipefail

DIR=${1:-/tmp/trtverify-slurm}
MARKER=.trtverify-slurm
[ -d "$DIR" ] || exit 0
[ -e "$DIR/$MARKER" ] || { echo "slurm_down: $DIR was not made by slurm_up.sh; leaving it alone" >&2; exit 1; }
export SLURM_CONF="$DIR/slurm.conf"

# pid from FILE if it is alive and its command name is NAME.
live_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}

# TERM, up to 15 s for a clean exit, then KILL.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "slurm_down: pid $pid ignored SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

if [ -f "$SLURM_CONF" ] && live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null; then
  jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    echo "slurm_down: cancelling jobs $jobs" >&2
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 30); do
      [ -z "$(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
fi

if pid=$(live_pid "$DIR/slurmd.pid" slurmd); then
  sid=$(ps -o sid= -p "$pid" | tr -d ' ')
  stop_pid "$pid"
  # Job steps slurmd forked share its session; none should be left after scancel, but never leave one behind.
  for child in $(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s && $1 != s {print $1}'); do
    echo "slurm_down: stopping leftover process $child ($(cat "/proc/$child/comm" 2>/dev/null))" >&2
    stop_pid "$child"
  done
fi
if pid=$(live_pid "$DIR/slurmctld.pid" slurmctld); then stop_pid "$pid"; fi
if pid=$(live_pid "$DIR/munge/munged.pid" munged); then stop_pid "$pid"; fi

# The link slurm_up.sh made for srun inside jobs (see there).
if [ "$(readlink /run/slurm/conf 2>/dev/null)" = "$(cd "$DIR" && pwd)" ]; then rm -f /run/slurm/conf; fi

if [ "${SLURM_TEST_KEEP:-0}" = 1 ]; then
  echo "slurm_down: stopped; kept $DIR" >&2
else
  rm -rf "$DIR"
fi
