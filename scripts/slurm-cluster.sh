#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the tests marked `slurm` and the launcher
# benchmark: munged, MariaDB, slurmdbd (so that sacct works), slurmctld and slurmd, all without
# systemd, every file of it under one folder, every daemon stopped by its own pid file.
#
#   scripts/slurm-cluster.sh start [DIR]   install what is missing (root or sudo), start; prints
#                                          the SLURM_CONF to export (the tests find DIR/slurm.conf)
#   scripts/slurm-cluster.sh stop [DIR]    stop every daemon that `start` started, by pid
#   scripts/slurm-cluster.sh status [DIR]  exit 0 if the cluster answers
#   scripts/slurm-cluster.sh remove [DIR]  stop it, then delete DIR (its database, logs and
#                                          state, about 180 MB) and the .slurm link to it
#
# DIR defaults to a folder of its own under /tmp, linked from .slurm in the repository (where the
# tests look): munged and MariaDB run as their own users, and must be able to reach it through
# every folder above it, which a checkout in a private folder would not allow. The node is this machine (`hostname -s`) at
# 127.0.0.1 with all its CPUs, 90 % of its memory and one fake GPU (gres.conf, File=/dev/null),
# so that GPU requests can be tested on a machine without one. Ports: FER3D_SLURM_PORT (default
# 6817) for slurmctld, the next two for slurmd and slurmdbd, the one after for MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."
command=${1:-start}
if [ -n "${2:-}" ]; then
  dir=$(realpath -m "$2")
else
  dir="/tmp/fer3d-slurm-$(id -u)-$(pwd -P | sha256sum | cut -c1-8)"
  [ "$command" = start ] && ln -sfn "$dir" .slurm
fi
port=${FER3D_SLURM_PORT:-6817}
packages=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo

answers() {  # slurmctld runs (by its pid file) and answers
  [ -f "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null \
    && SLURM_CONF="$dir/slurm.conf" timeout 5 sinfo -h >/dev/null 2>&1
}

stop_pid() {  # stop_pid NAME PIDFILE: TERM, wait up to 10 s, then KILL
  local pid
  [ -f "$2" ] || return 0
  pid=$(cat "$2" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    $sudo kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "slurm-cluster: $1 ($pid) ignored TERM: KILL"; $sudo kill -9 "$pid" || true; }
  fi
  rm -f "$2"
}

stop() {
  if answers; then  # jobs first: their slurmstepd would outlive slurmd
    SLURM_CONF="$dir/slurm.conf" scancel --full --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h -t running,completing 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_pid slurmd "$dir/run/slurmd.pid"
  stop_pid slurmctld "$dir/run/slurmctld.pid"
  stop_pid slurmdbd "$dir/run/slurmdbd.pid"
  stop_pid mariadb "$dir/db/mariadb.pid"
  stop_pid munged "$dir/munge/munged.pid"
  echo "slurm-cluster: stopped ($dir)"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "slurm-cluster: $what did not come up in ${seconds} s; its log is in $dir/log" >&2
  return 1
}

install() {
  local missing=()
  for pkg in "${packages[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  echo "slurm-cluster: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

configure() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc --all)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$dir"/{run,log,spool,state,munge,db}
  [ "$(stat -c %U "$dir")" = "$(id -un)" ] || { echo "slurm-cluster: $dir is not ours" >&2; return 1; }
  # MariaDB's user must traverse to its data folder; munged's must own its socket folder
  chmod 755 "$dir"
  $sudo chown mysql:mysql "$dir/db"
  $sudo chown munge:munge "$dir/munge"
  local auth="AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket"
  cat >"$dir/slurm.conf" <<EOF
ClusterName=fer3d
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
$auth
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((port + 2))
AccountingStoragePass=$dir/munge/munge.socket
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MinJobAge=300
KillWait=5
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
# limits sinfo does not show per node, so only the queue's pending reason can tell (tests)
PartitionName=limited Nodes=$host MaxCPUsPerNode=1 MaxTime=10 State=UP
EOF
  echo "NodeName=$host Name=gpu File=/dev/null" >"$dir/gres.conf"
  cat >"$dir/slurmdbd.conf" <<EOF
$auth
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$((port + 2))
SlurmUser=root
PidFile=$dir/run/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((port + 3))
StorageUser=slurm
StoragePass=fer3d
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$dir/slurmdbd.conf"  # slurmdbd refuses a config others can read
}

start() {
  if answers; then
    echo "slurm-cluster: already running; export SLURM_CONF=$dir/slurm.conf"
    return 0
  fi
  stop >/dev/null  # what a crashed earlier start left behind
  install
  configure
  trap 'echo "slurm-cluster: start failed; stopping what it started" >&2; stop >&2' ERR
  local started=$SECONDS sock="$dir/db/mysqld.sock"
  $sudo runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --force
  wait_for munged 10 test -S "$dir/munge/munge.socket"
  if [ ! -d "$dir/db/data/mysql" ]; then
    $sudo runuser -u mysql -- mariadb-install-db --datadir="$dir/db/data" --auth-root-authentication-method=socket \
      >"$dir/log/mariadb-install.log" 2>&1
  fi
  $sudo runuser -u mysql -- /usr/sbin/mariadbd --datadir="$dir/db/data" --socket="$sock" \
    --pid-file="$dir/db/mariadb.pid" --bind-address=127.0.0.1 --port=$((port + 3)) \
    --log-error="$dir/db/mariadb.err" >/dev/null 2>&1 &
  wait_for MariaDB 30 test -f "$dir/db/mariadb.pid"
  wait_for MariaDB 30 mariadb --socket="$sock" -e 'select 1'
  mariadb --socket="$sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'fer3d';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  export SLURM_CONF="$dir/slurm.conf"
  $sudo env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmdbd
  wait_for slurmdbd 30 timeout 5 sacctmgr -n list cluster
  sacctmgr -i add cluster fer3d >/dev/null 2>&1 || true
  $sudo env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmctld
  $sudo env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmd
  wait_for slurmctld 30 answers
  wait_for "the node" 30 bash -c "SLURM_CONF=$SLURM_CONF sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'"
  trap - ERR
  echo "slurm-cluster: up in $((SECONDS - started)) s ($(nproc --all) CPUs, 1 fake GPU);" \
    "export SLURM_CONF=$dir/slurm.conf"
}

case "$command" in
  start) start ;;
  stop) stop ;;
  remove)
    stop
    rm -rf -- "$dir"
    [ -L .slurm ] && [ "$(readlink .slurm)" = "$dir" ] && rm -f .slurm
    echo "slurm-cluster: removed $dir" ;;
  status) answers && SLURM_CONF="$dir/slurm.conf" sinfo ;;
  *) echo "usage: $0 start|stop|remove|status [DIR]" >&2; exit 2 ;;
esac
