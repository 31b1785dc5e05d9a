#!/usr/bin/env bash
# A one-node SLURM on localhost, for testing the workflow's SLURM profile for real.
#
#   scripts/slurm-local.sh start    install Debian's SLURM + munge (once), write
#                                   /etc/slurm/slurm.conf, start munged, slurmctld and
#                                   slurmd, wait until the node is idle
#   scripts/slurm-local.sh stop     stop exactly the daemons that 'start' started (by PID)
#   scripts/slurm-local.sh status   print whether they run and what sinfo says
#
# Needs root and apt-get (Debian/Ubuntu). Exit codes: 0 ok, 1 failure, 3 cannot run here
# (not root, no apt-get, ...) -- the reason is printed on stderr.
# Environment: SLURM_LOCAL_DIR (scratch folder, default /tmp/mecmodel-slurm),
#              SLURM_LOCAL_TIMEOUT (seconds to wait for the node, default 60).
set -euo pipefail

SCRATCH=${SLURM_LOCAL_DIR:-/tmp/mecmodel-slurm}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CONF=/etc/slurm/slurm.conf   # the executor's job step strips SLURM_CONF, so it must live here
DAEMONS=(munged slurmctld slurmd)

say() { echo "slurm-local: $*" >&2; }
cannot() { say "cannot run: $*"; exit 3; }

pid_alive() {  # pid_alive NAME -> 0 when the recorded PID runs and is that daemon
  local f="$SCRATCH/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  # The PID may have been reused by another program: check its name.
  grep -qx "$1" "/proc/$pid/comm" 2>/dev/null
}

preflight() {
  [ "$(uname -s)" = Linux ] || cannot "needs Linux, this is $(uname -s)"
  [ "$(id -u)" -eq 0 ] || cannot "needs root (to install packages and run the daemons); uid is $(id -u)"
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
      || ! command -v sinfo >/dev/null; then
    command -v apt-get >/dev/null || cannot "SLURM is not installed and there is no apt-get to install it"
  fi
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
      && command -v sinfo >/dev/null; then
    return
  fi
  say "installing slurmctld slurmd slurm-client munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || { say "apt-get update failed"; exit 1; }
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >&2 \
    || { say "apt-get install failed"; exit 1; }
}

real_memory_mb() {
  # Advertise less than the machine has, so slurmd's own check never drains the node.
  local kb
  kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  local mb=$((kb / 1024 * 9 / 10 - 512))
  [ "$mb" -ge 512 ] || mb=512
  echo "$mb"
}

write_conf() {
  local cpus=2 mem
  mem=$(real_memory_mb)
  mkdir -p "$SCRATCH"/{state,spool,log,run} /etc/slurm
  # SLURM refuses a config that names CPUs the node does not have (it would drain it).
  local have
  have=$(nproc)
  [ "$have" -ge "$cpus" ] || cpus=$have
  local tmp
  tmp=$(mktemp /etc/slurm/.slurm.conf.XXXXXX)
  cat >"$tmp" <<CONF
# Written by scripts/slurm-local.sh: a single-node SLURM on localhost for tests.
ClusterName=mecmodel-local
SlurmctldHost=localhost
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$SCRATCH/run/slurmctld.pid
SlurmdPidFile=$SCRATCH/run/slurmd.pid
SlurmctldLogFile=$SCRATCH/log/slurmctld.log
SlurmdLogFile=$SCRATCH/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  chmod 644 "$tmp"
  mv -f "$tmp" "$CONF"
}

start_munge() {
  if pid_alive munged; then return; fi
  [ -f /etc/munge/munge.key ] || { say "no /etc/munge/munge.key (the munge package creates it)"; exit 1; }
  install -d -o munge -g munge -m 0755 /run/munge
  # munged refuses to start if an old socket or a stale daemon lingers from a killed run.
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  # setpriv execs munged in place (no fork), so $! is munged's own PID.
  setsid setpriv --reuid=munge --regid=munge --clear-groups munged -F >"$SCRATCH/log/munged.out" 2>&1 </dev/null 9>&- &
  echo $! >"$SCRATCH/munged.pid"
  local i
  for i in $(seq 1 50); do
    if [ -S /run/munge/munge.socket.2 ]; then break; fi
    sleep 0.1
  done
  if ! pid_alive munged; then
    say "munged did not start; see $SCRATCH/log/munged.out:"; cat "$SCRATCH/log/munged.out" >&2 || true; exit 1
  fi
}

start_daemon() {  # start_daemon NAME ARGS...
  local name=$1
  shift
  if pid_alive "$name"; then return; fi
  setsid "$name" "$@" >"$SCRATCH/log/$name.out" 2>&1 </dev/null 9>&- &
  echo $! >"$SCRATCH/$name.pid"
}

node_state() { timeout 5 sinfo -h -o %t 2>/dev/null | head -n1 || true; }

cmd_start() {
  preflight
  install_packages
  mkdir -p "$SCRATCH"
  exec 9>"$SCRATCH/lock"
  flock -w 120 9 || { say "another start/stop holds $SCRATCH/lock"; exit 1; }
  if pid_alive munged && pid_alive slurmctld && pid_alive slurmd && [ "$(node_state)" = idle ]; then
    say "already running (node idle)"
    return 0
  fi
  write_conf
  start_munge
  # -i: ignore state saved by an earlier run, so every start is a clean cluster.
  start_daemon slurmctld -D -i
  start_daemon slurmd -D -N localhost
  local t0=$SECONDS st=""
  while [ $((SECONDS - t0)) -lt "$TIMEOUT" ]; do
    for d in "${DAEMONS[@]}"; do
      if ! pid_alive "$d"; then
        say "$d exited during start; its log:"
        tail -n 20 "$SCRATCH/log/$d.out" "$SCRATCH/log/$d.log" 2>/dev/null >&2 || true
        cmd_stop_locked
        exit 1
      fi
    done
    st=$(node_state)
    case "$st" in
      idle) say "node localhost idle after $((SECONDS - t0)) s (conf $CONF, scratch $SCRATCH)"; return 0 ;;
      drain* | down*) timeout 5 scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  say "node not idle after ${TIMEOUT} s (last state: '${st:-none}'); stopping"
  cmd_stop_locked
  exit 1
}

cmd_stop_locked() {
  local d pid
  # Reverse order: slurmd, slurmctld, then munged.
  for d in slurmd slurmctld munged; do
    if pid_alive "$d"; then
      pid=$(cat "$SCRATCH/$d.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      say "stopped $d (pid $pid)"
    fi
    rm -f "$SCRATCH/$d.pid"
  done
}

cmd_stop() {
  mkdir -p "$SCRATCH"
  exec 9>"$SCRATCH/lock"
  flock -w 120 9 || { say "another start/stop holds $SCRATCH/lock"; exit 1; }
  cmd_stop_locked
}

cmd_status() {
  local d up=0
  for d in "${DAEMONS[@]}"; do
    if pid_alive "$d"; then echo "$d: running (pid $(cat "$SCRATCH/$d.pid"))"; up=$((up + 1)); else echo "$d: stopped"; fi
  done
  if [ "$up" -gt 0 ] && command -v sinfo >/dev/null; then echo "node: $(node_state)"; fi
  [ "$up" -eq ${#DAEMONS[@]} ]
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
