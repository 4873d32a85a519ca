#!/usr/bin/env bash
# Tear down the cluster started by .ci/slurm-up.sh: cancel its jobs, stop slurmd, slurmctld and
# (only if slurm-up started it) munged by the PIDs in their pid files, remove the config files it
# wrote and its state folder. Safe to run twice or after a failed slurm-up; never touches a
# slurm.conf or daemons it did not create. Set DAEDYN_SLURM_KEEP=1 to keep the logs in the state folder.
set -uo pipefail

STATE=${DAEDYN_SLURM_DIR:-/tmp/daedyn-slurm}
MARKER="# written by daedyn .ci/slurm-up.sh"
export PATH=$PATH:/usr/sbin

say() { echo "slurm-down: $*" >&2; }
ours() { [ -f "$1" ] && grep -qF "$MARKER" "$1"; }

# stop NAME PIDFILE: TERM, wait up to 15 s, then KILL
stop() {
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if ! kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || { say "stopped $name (pid $pid)"; return 0; }
    sleep 0.5
  done
  say "$name (pid $pid) ignored SIGTERM for 15s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

if ours /etc/slurm/slurm.conf && [ -s "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
  jobs=$(timeout 10 squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs || true
    for _ in $(seq 30); do
      [ -z "$(timeout 10 squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
fi

stop slurmd "$STATE/slurmd.pid"
stop slurmctld "$STATE/slurmctld.pid"
stop munged "$STATE/munged.pid"   # only present when slurm-up started munged

for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  if ours "$f"; then rm -f "$f"; fi
done
if [ "${DAEDYN_SLURM_KEEP:-0}" = 1 ]; then
  say "kept $STATE (DAEDYN_SLURM_KEEP=1)"
else
  rm -rf "$STATE"
fi
say "done"
