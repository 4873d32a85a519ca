#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on localhost for CI (see docs/cluster.md).
#
# Needs root and the Debian packages slurmctld slurmd slurm-client munge (installed by .ci/run).
# Starts munged (unless one already answers), slurmctld and slurmd; all state, spool, pid and log
# files live in $DAEDYN_SLURM_DIR (default /tmp/daedyn-slurm). The config must be
# /etc/slurm/slurm.conf: the jobstep plugin drops SLURM_CONF before the srun inside each job.
# The node also declares two fake GPUs (character devices made with mknod), so that GPU requests
# (sbatch --gpus=N) are scheduled; they prove the submission path, not GPU compute.
#
# Idempotent-ish: if the cluster this script wrote is already up and idle it only says so.
# It refuses to overwrite a slurm.conf it did not write. Every wait has a timeout.
# Stop everything with .ci/slurm-down.sh (also after a failed start).
set -euo pipefail

STATE=${DAEDYN_SLURM_DIR:-/tmp/daedyn-slurm}
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MARKER="# written by daedyn .ci/slurm-up.sh"
NODE=$(hostname -s)

say() { echo "slurm-up: $*" >&2; }
die() {
  say "ERROR: $*"
  for f in "$STATE"/log/*.log; do
    [ -s "$f" ] && { echo "----- last lines of $f" >&2; tail -n 20 "$f" >&2; }
  done
  say "clean up with .ci/slurm-down.sh"
  exit 1
}
# wait_for SECONDS WHAT PIDFILE COMMAND...: poll COMMAND every 0.5 s until it succeeds; fail at
# once if the daemon whose pid is in PIDFILE ("-": none) has died
wait_for() {
  local limit=$1 what=$2 pidfile=$3
  shift 3
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${limit}s waiting for $what"
    if [ "$pidfile" != - ] && [ "$SECONDS" -gt $((deadline - limit + 2)) ] && ! alive "$pidfile"; then
      die "the daemon died while waiting for $what"
    fi
    sleep 0.5
  done
}
# pids_of NAME...: pids of running processes with these names (no procps on minimal images)
pids_of() {
  local f
  for f in /proc/[0-9]*/comm; do
    for name in "$@"; do
      [ "$(cat "$f" 2>/dev/null)" = "$name" ] && { f=${f#/proc/}; echo -n "${f%/comm} "; }
    done
  done
  return 0
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }
node_idle() { [[ "$(node_state)" == idle* ]]; }
ctld_up() { scontrol ping 2>/dev/null | grep -q "is UP"; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts munged, slurmctld and slurmd)"
for cmd in munged munge unmunge slurmctld slurmd sinfo scontrol srun sbatch squeue; do
  command -v "$cmd" >/dev/null || PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null \
    || die "$cmd not found; install: apt-get install --no-install-recommends slurmctld slurmd slurm-client munge"
done
export PATH=$PATH:/usr/sbin

# Already up (this script's cluster)?
if [ -f "$CONF" ] && grep -qF "$MARKER" "$CONF" && alive "$STATE/slurmctld.pid" \
  && alive "$STATE/slurmd.pid" && node_idle; then
  say "cluster already up: $(sinfo -h -N -o '%N %P %T %c CPUs %m MB %G')"
  exit 0
fi
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
  die "$CONF exists and was not written by this script; refusing to overwrite a site config"
fi
if pids=$(pids_of slurmctld slurmd) && [ -n "$pids" ]; then
  die "slurmctld/slurmd already running (pids $pids) but not this script's cluster"
fi

# A fresh state folder (a stale one from an interrupted run would restore old jobs)
rm -rf "$STATE"
mkdir -p "$STATE"/{ctld,spool,log}
start=$SECONDS

# 1. munge: authentication between the commands and the daemons
if timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
  say "munged already running, reusing it (slurm-down will leave it alone)"
else
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key || die "could not create /etc/munge/munge.key"
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 755 /run/munge
  runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
  wait_for 10 "munged (munge -n | unmunge)" /run/munge/munged.pid bash -c "munge -n | unmunge"
  cp /run/munge/munged.pid "$STATE/munged.pid"   # started by us: slurm-down stops it
fi

# 2. configuration
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
for i in 0 1; do
  mknod "$STATE/fake-gpu$i" c 195 "$i" || die "mknod failed: no fake GPU devices"
done
mkdir -p /etc/slurm
cat >"$CONF" <<EOF
$MARKER for the CI cluster in $STATE; removed by .ci/slurm-down.sh
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups in containers: nothing is confined, memory is not enforced
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job with no --mem takes the whole node and jobs run one at a time
DefMemPerCPU=500
# no accounting database: sacct does not work, snakemake must use squeue for job status
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue/scontrol for 10 min (the plugin's squeue status needs this)
MinJobAge=600
ReturnToService=2
InactiveLimit=0
KillWait=5
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$GRES" <<EOF
$MARKER; fake GPUs for scheduling tests (no compute)
AutoDetect=off
NodeName=$NODE Name=gpu File=$STATE/fake-gpu[0-1]
EOF

# 3. daemons
slurmctld || die "slurmctld did not start"
wait_for 30 "slurmctld (scontrol ping)" "$STATE/slurmctld.pid" ctld_up
slurmd || die "slurmd did not start"
wait_for 30 "slurmd to register node $NODE" "$STATE/slurmd.pid" bash -c "sinfo -h -N -n '$NODE' -o %T | grep -q ."
if [[ "$(node_state)" =~ ^(drain|down) ]]; then
  scontrol update NodeName="$NODE" State=RESUME || true
fi
deadline=$((SECONDS + 60))
until node_idle; do
  [ "$SECONDS" -lt "$deadline" ] || die "node $NODE is '$(node_state)', not idle, after 60s ($(sinfo -h -R 2>/dev/null))"
  sleep 0.5
done

# 4. sanity: a job step runs on the node
err=$STATE/log/srun-check.err
out=$(timeout -k 5 60 srun -Q -N1 -t 1 hostname 2>"$err") || die "srun -N1 -t 1 hostname failed: $(cat "$err")"
[ "$out" = "$(hostname)" ] || [ "$out" = "$NODE" ] || die "srun printed '$out', expected '$(hostname)'"
out=$(timeout -k 5 60 srun -Q -N1 -t 1 --gpus=1 bash -c 'echo "gpus=$CUDA_VISIBLE_DEVICES"' 2>"$err") \
  || die "srun --gpus=1 failed: $(cat "$err")"
[[ "$out" =~ ^gpus=[0-9] ]] || die "srun --gpus=1 was given no GPU (printed '$out'; stderr: $(cat "$err"))"
wait_for 30 "node $NODE to be idle after the checks" - node_idle
say "cluster up in $((SECONDS - start))s: $(sinfo -h -N -o '%N partition=%P %T %c CPUs %m MB %G')"
