#!/usr/bin/env bash
# A one-node SLURM on localhost, for testing the workflow's SLURM profile for real.
#
#   scripts/slurm-local.sh start    install Debian's SLURM + munge (once), write
#                                   /etc/slurm/slurm.conf, start munged, slurmctld and
#                                   slurmd, wait until the node is idle
#   scripts/slurm-local.sh stop     cancel its jobs, stop exactly the daemons that 'start'
#                                   started (by PID), remove the slurm.conf it wrote
#   scripts/slurm-local.sh status   print whether they run and what sinfo says
#
# Needs root and apt-get (Debian/Ubuntu). Exit codes: 0 ok, 1 failure, 3 cannot run here
# (not root, no apt-get, a SLURM configuration of someone else's) -- the reason is on stderr.
# Environment: SLURM_LOCAL_DIR (scratch folder: PIDs, logs, state; default /tmp/mecmodel-slurm),
#              SLURM_LOCAL_TIMEOUT (seconds to wait for the node, default 60).
set -euo pipefail

SCRATCH=${SLURM_LOCAL_DIR:-/tmp/mecmodel-slurm}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CONF=/etc/slurm/slurm.conf # the executor's job step strips SLURM_CONF, so it must live here
MARK="# Written by scripts/slurm-local.sh"
MUNGE_SOCKET=/run/munge/munge.socket.2
DAEMONS=(munged slurmctld slurmd)

say() { echo "slurm-local: $*" >&2; }
cannot() {
  say "cannot run: $*"
  exit 3
}
fail() {
  say "$*"
  exit 1
}

running() { # running PID -> 0 when the process exists and is no zombie
  local state
  state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

pid_alive() { # pid_alive NAME -> 0 when the recorded PID runs and is that daemon
  local f="$SCRATCH/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && running "$pid" || return 1
  # The PID may have been reused by another program: check its name.
  grep -qx "$1" "/proc/$pid/comm" 2>/dev/null
}

munge_answers() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

have_slurm() {
  local c
  for c in slurmctld slurmd munged munge sinfo sbatch scontrol; do command -v "$c" >/dev/null || return 1; done
}

lock() { # one start/stop at a time per scratch folder
  mkdir -p "$SCRATCH"
  exec 9>"$SCRATCH/lock"
  flock -w 120 9 || fail "another start/stop holds $SCRATCH/lock"
}

preflight() {
  [ "$(uname -s)" = Linux ] || cannot "needs Linux, this is $(uname -s)"
  [ "$(id -u)" -eq 0 ] || cannot "needs root (to install packages and run the daemons); uid is $(id -u)"
  local c
  for c in flock setsid setpriv; do command -v "$c" >/dev/null || cannot "needs $c (util-linux)"; done
  have_slurm || command -v apt-get >/dev/null || cannot "SLURM is not installed and there is no apt-get to install it"
  # Never overwrite the configuration of a real SLURM installation.
  if [ -f "$CONF" ] && ! head -n1 "$CONF" | grep -qF "$MARK"; then
    cannot "$CONF exists and was not written by this script (a real SLURM installation?)"
  fi
}

install_packages() {
  have_slurm && return
  say "installing slurmctld slurmd slurm-client munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >&2 \
    || fail "apt-get install failed"
  have_slurm || fail "the packages are installed but a SLURM or munge command is still missing"
}

real_memory_mb() {
  # Advertise less than the machine has, so slurmd's own check never drains the node.
  local kb mb
  kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  mb=$((kb / 1024 * 9 / 10 - 512))
  [ "$mb" -ge 512 ] || mb=512
  echo "$mb"
}

write_conf() {
  local cpus=2 mem have tmp
  mem=$(real_memory_mb)
  # A node that claims more CPUs than it has is drained by slurmctld.
  have=$(nproc)
  [ "$have" -ge "$cpus" ] || cpus=$have
  mkdir -p /etc/slurm
  tmp=$(mktemp /etc/slurm/.slurm.conf.XXXXXX)
  # No slurmdbd: sacct has nothing to ask, so clients must poll with squeue, which sees a
  # finished job for MinJobAge (default 300 s). KillWait is short so that 'stop' is quick.
  cat >"$tmp" <<CONF
$MARK: a single-node SLURM on localhost for tests.
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
KillWait=5
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
  pid_alive munged && return
  rm -f "$SCRATCH/munged.pid"
  if munge_answers; then
    # Someone else's munged (e.g. the system's): use it, and leave it running on 'stop'.
    say "using the munged already answering on $MUNGE_SOCKET"
    return
  fi
  [ -f /etc/munge/munge.key ] || fail "no /etc/munge/munge.key (the munge package creates it)"
  install -d -o munge -g munge -m 0755 /run/munge
  # Nothing answers, so a socket left here is from a killed munged; it would block the start.
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  # setsid and setpriv exec in place (this background job is no group leader), so $! is
  # munged's own PID; fd 9 (the lock) is not handed down.
  setsid setpriv --reuid=munge --regid=munge --clear-groups munged -F >"$SCRATCH/log/munged.out" 2>&1 </dev/null 9>&- &
  echo $! >"$SCRATCH/munged.pid"
  wait_exec munged
  local i
  for i in $(seq 1 50); do
    munge_answers && return
    pid_alive munged || break
    sleep 0.1
  done
  say "munged did not start; $SCRATCH/log/munged.out says:"
  cat "$SCRATCH/log/munged.out" >&2 || true
  stop_locked
  exit 1
}

start_daemon() { # start_daemon NAME ARGS...
  local name=$1
  shift
  pid_alive "$name" && return
  setsid "$name" "$@" >"$SCRATCH/log/$name.out" 2>&1 </dev/null 9>&- &
  echo $! >"$SCRATCH/$name.pid"
  wait_exec "$name"
}

wait_exec() { # wait_exec NAME: until the new PID runs NAME (the shell's fork is briefly called otherwise)
  local pid i
  pid=$(cat "$SCRATCH/$1.pid")
  for i in $(seq 1 50); do
    pid_alive "$1" && return 0
    running "$pid" || return 0 # exited: the caller reports it
    sleep 0.1
  done
}

node_state() { timeout 5 sinfo -h -o %t 2>/dev/null | head -n1 || true; }

cmd_start() {
  preflight
  lock
  install_packages
  local st
  if pid_alive slurmctld && pid_alive slurmd && { pid_alive munged || munge_answers; }; then
    st=$(node_state)
    case "$st" in
      idle | mix | alloc | comp)
        say "already running (node $st, scratch $SCRATCH)"
        return 0
        ;;
    esac
  fi
  # Whatever half of a cluster runs from an earlier start goes first: every start is a clean one.
  stop_locked
  rm -rf "${SCRATCH:?}"/{state,spool,log,run}
  mkdir -p "$SCRATCH"/{state,spool,log,run}
  write_conf
  start_munge
  # -c: do not recover jobs or node states from an earlier run.
  start_daemon slurmctld -D -c
  start_daemon slurmd -D -N localhost
  local t0=$SECONDS d
  st=""
  while [ $((SECONDS - t0)) -lt "$TIMEOUT" ]; do
    for d in slurmctld slurmd; do
      if ! pid_alive "$d"; then
        say "$d exited during start; its output:"
        tail -n 20 "$SCRATCH/log/$d.out" >&2 2>/dev/null || true
        stop_locked
        exit 1
      fi
    done
    st=$(node_state)
    case "$st" in
      idle)
        say "node localhost idle after $((SECONDS - t0)) s (conf $CONF, scratch $SCRATCH)"
        return 0
        ;;
      drain* | down*) timeout 5 scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  say "node not idle after ${TIMEOUT} s (last state: '${st:-none}'); stopping"
  stop_locked
  exit 1
}

stepd_pids() { # PIDs of the slurmstepd processes of our slurmd, found by their sockets in our spool folder
  local inodes pattern=()
  inodes=$(awk -v dir="$SCRATCH/spool/" 'NR > 1 && index($8, dir) == 1 {print $7}' /proc/net/unix | sort -u)
  [ -n "$inodes" ] || return 0
  local i
  for i in $inodes; do pattern+=(-o -lname "socket:\\[$i\\]"); done
  { find /proc/[0-9]*/fd -maxdepth 1 \( -false "${pattern[@]}" \) 2>/dev/null || true; } | cut -d/ -f3 | sort -un
}

kill_pids() { # kill_pids PID... : TERM, then KILL whatever still runs after 5 s
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local p left
  for _ in $(seq 1 50); do
    left=0
    for p in "$@"; do running "$p" && left=1; done
    [ "$left" -eq 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}

cancel_jobs() {
  # Jobs still running (a killed or failed test) would outlive slurmd in their slurmstepd.
  local jobs t0=$SECONDS
  jobs=$(timeout 10 squeue -h -o %A -t PD,R,CG,S 2>/dev/null || true)
  [ -n "$jobs" ] || return 0
  say "cancelling jobs $(echo $jobs)"
  # shellcheck disable=SC2086
  timeout 10 scancel $jobs >/dev/null 2>&1 || true
  while [ $((SECONDS - t0)) -lt 20 ]; do
    [ -z "$(timeout 10 squeue -h -o %A -t PD,R,CG,S 2>/dev/null || echo busy)" ] && return 0
    sleep 0.5
  done
  say "jobs still listed 20 s after scancel: $(timeout 10 squeue -h -o '%A %T' 2>/dev/null | tr '\n' ' ')"
}

stop_locked() {
  local d pid tasks stepds
  if pid_alive slurmctld && pid_alive slurmd; then cancel_jobs; fi
  if pid_alive slurmd; then
    # Job processes slurmd still tracks (normally none left after scancel), then their stepds.
    tasks=$(timeout 10 scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' || true)
    # shellcheck disable=SC2086
    kill_pids $tasks
  fi
  stepds=$(stepd_pids)
  # shellcheck disable=SC2086
  if [ -n "$stepds" ]; then
    say "stopping slurmstepd $(echo $stepds)"
    kill_pids $stepds
  fi
  for d in slurmd slurmctld munged; do
    if pid_alive "$d"; then
      pid=$(cat "$SCRATCH/$d.pid")
      kill_pids "$pid"
      say "stopped $d (pid $pid)"
    fi
    rm -f "$SCRATCH/$d.pid"
  done
}

cmd_stop() {
  lock
  stop_locked
  # With a slurm.conf present, snakemake's SLURM plugin queries it on every start (seconds
  # each): remove ours once its daemons are gone.
  if [ -f "$CONF" ] && head -n1 "$CONF" | grep -qF "$MARK"; then
    rm -f "$CONF"
    say "removed $CONF"
  fi
}

cmd_status() {
  local d up=0
  for d in "${DAEMONS[@]}"; do
    if pid_alive "$d"; then
      echo "$d: running (pid $(cat "$SCRATCH/$d.pid"))"
      up=$((up + 1))
    elif [ "$d" = munged ] && command -v munge >/dev/null && munge_answers; then
      echo "munged: not started here, but one answers on $MUNGE_SOCKET"
      up=$((up + 1))
    else
      echo "$d: stopped"
    fi
  done
  if [ "$up" -gt 0 ] && command -v sinfo >/dev/null; then echo "node: $(node_state)"; fi
  [ "$up" -eq ${#DAEMONS[@]} ]
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
