#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for vsrlab's SLURM tests (sbatch, srun,
# --signal, requeue, submitit). All state lives in one folder:
#
#     VSRLAB_SLURM_DIR   (default /tmp/vsrlab-slurm)
#         slurm.conf            the cluster's configuration (clients need SLURM_CONF=<dir>/slurm.conf)
#         state/ spool/ run/ log/   slurmctld state, slurmd spool, pid files, daemon logs
#         munge/                munge key, socket, pid file and log (munged runs as the munge user)
#
# Usage:
#     scripts/slurm_local.sh start            install SLURM + munge if needed (root, Debian/Ubuntu),
#                                             start munged, slurmctld, slurmd; wait until the node is idle
#     scripts/slurm_local.sh stop [--purge]   cancel all jobs, stop the daemons; --purge removes the folder
#     scripts/slurm_local.sh status           daemons, sinfo, squeue; exit 0 only if all daemons run
#     scripts/slurm_local.sh env              prints `export SLURM_CONF=...`:
#                                                 eval "$(scripts/slurm_local.sh env)"
#
# Environment: VSRLAB_SLURM_DIR, VSRLAB_SLURMCTLD_PORT (16817), VSRLAB_SLURMD_PORT (16818),
# VSRLAB_SLURM_START_TIMEOUT (seconds to wait for the idle node, 60).
# Starting and stopping the daemons needs root (SlurmUser=root, slurmd runs jobs as their users).
# The cluster: ClusterName vsrlab, one node (hostname -s, address 127.0.0.1, all CPUs), partition
# `debug` (default, no time limit), no accounting (sacct has no data), JobRequeue=1, MinJobAge=5 s.
set -euo pipefail

DIR=${VSRLAB_SLURM_DIR:-/tmp/vsrlab-slurm}
CTLD_PORT=${VSRLAB_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${VSRLAB_SLURMD_PORT:-16818}
START_TIMEOUT=${VSRLAB_SLURM_START_TIMEOUT:-60}
CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket.2
NODE=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client munge)
# daemon name -> pid file (written by the daemons themselves)
declare -A PIDFILE=([munged]=$MUNGE_DIR/munged.pid [slurmctld]=$DIR/run/slurmctld.pid [slurmd]=$DIR/run/slurmd.pid)
# the daemons live in sbin, which may not be on a non-login PATH
export PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF=$CONF

log() { echo "slurm_local: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_of() {  # prints the pid of a running daemon started by this script, or fails
    local file=${PIDFILE[$1]} pid
    [[ -r $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid && -e /proc/$pid ]] || return 1   # (not kill -0: other users may ask too)
    # a stale pid file may name another process by now: check the program's name
    [[ $(basename "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)") == "$1" ]] || return 1
    echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

install_packages() {
    if [[ $(id -u) -ne 0 ]]; then
        die "sbatch is not installed and you are not root: install the Debian/Ubuntu packages" \
            "'${PACKAGES[*]}' (sudo apt-get install ${PACKAGES[*]}), then run '$0 start' as root"
    fi
    command -v apt-get >/dev/null || die "sbatch is missing and there is no apt-get: install SLURM (${PACKAGES[*]}) yourself"
    log "installing ${PACKAGES[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # keep the packages' postinst scripts from starting services (no systemd/init here): policy-rc.d
    # answering 101 is the Debian way; put one in place only for the install if there is none
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
    fi
    # (apt's and dpkg's messages go to stderr: stdout is only the `export SLURM_CONF=...` line)
    apt-get update -qq >&2 || log "apt-get update failed; trying the install with the current package lists"
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}" >&2 \
        || { log "apt-get install reported errors (often a service that cannot start here); finishing the configuration"
             dpkg --configure -a >&2 || true; }
    if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
    local tool
    for tool in sbatch slurmctld slurmd munged; do
        command -v "$tool" >/dev/null || die "the install did not provide $tool"
    done
}

real_memory_mb() {  # ~90% of MemTotal, in MB: slurmd drains a node that has less memory than configured
    awk '/^MemTotal:/ { printf "%d\n", $2 / 1024 * 0.9 }' /proc/meminfo
}

node_topology() {  # "CPUs=N [Sockets=.. CoresPerSocket=.. ThreadsPerCore=..]" with N = nproc
    local cpus hw
    cpus=$(nproc)
    # slurmd's view of the hardware; used only where it has as many CPUs as nproc (no cpuset limit),
    # else slurmd "reconfigures" the socket/core split on its own
    hw=$(slurmd -C 2>/dev/null | head -n 1 || true)
    if [[ $hw =~ CPUs=([0-9]+).*SocketsPerBoard=([0-9]+).*CoresPerSocket=([0-9]+).*ThreadsPerCore=([0-9]+) ]] \
        && [[ ${BASH_REMATCH[1]} -eq $cpus ]]; then
        echo "CPUs=$cpus Sockets=${BASH_REMATCH[2]} CoresPerSocket=${BASH_REMATCH[3]} ThreadsPerCore=${BASH_REMATCH[4]}"
    else
        echo "CPUs=$cpus"
    fi
}

write_conf() {
    cat >"$CONF" <<EOF
# written by scripts/slurm_local.sh: a single-node cluster for tests; every path is under $DIR
ClusterName=vsrlab
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=${PIDFILE[slurmctld]}
SlurmdPidFile=${PIDFILE[slurmd]}
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
# look at pending jobs every 2 s (defaults 60 s / 30 s): a requeued job restarts promptly
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
MinJobAge=5
KillWait=5
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE $(node_topology) RealMemory=$(real_memory_mb) State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
    running munged && return 0
    mkdir -p "$MUNGE_DIR"
    local user=munge
    if ! id "$user" >/dev/null 2>&1; then
        user=root  # no munge user (not Debian's package): run munged as root, which needs --force
    fi
    local key=$MUNGE_DIR/munge.key
    if [[ ! -s $key ]]; then
        log "creating the munge key $key"
        if command -v mungekey >/dev/null; then
            rm -f "$key"; mungekey --create --keyfile="$key"
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        fi
    fi
    # munged insists: key readable only by its user, socket folder owned by it, not writable by others
    chown "$user:" "$MUNGE_DIR" "$key"
    chmod 0755 "$MUNGE_DIR"   # clients of every user connect to the socket
    chmod 0400 "$key"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    local args=(--socket="$MUNGE_SOCKET" --key-file="$key" --pid-file="${PIDFILE[munged]}"
                --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed")
    if [[ $user == root ]]; then
        munged --force "${args[@]}"
    else
        runuser -u "$user" -- munged "${args[@]}"
    fi
    local _
    for _ in $(seq 50); do [[ -S $MUNGE_SOCKET ]] && running munged && return 0; sleep 0.1; done
    tail -n 20 "$MUNGE_DIR/munged.log" >&2 || true
    die "munged did not start"
}

port_in_use() {  # something listens on 127.0.0.1:$1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cluster_state() {  # the node's state as sinfo reports it (idle, down*, ...), empty if slurmctld does not answer
    sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1 || true
}

log_tails() {
    local f
    for f in "$MUNGE_DIR/munged.log" "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        [[ -r $f ]] && { echo "==> $f <=="; tail -n 25 "$f"; }
    done >&2
    return 0
}

cmd_start() {
    command -v sbatch >/dev/null || install_packages
    if running munged && running slurmctld && running slurmd; then
        log "already running ($DIR): node $NODE is $(cluster_state)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "starting the daemons needs root (SlurmUser=root); run '$0 start' as root"
    local port
    for port in "$CTLD_PORT" "$SLURMD_PORT"; do
        if ! running slurmctld && ! running slurmd && port_in_use "$port"; then
            die "port $port on 127.0.0.1 is in use (another SLURM?): choose others with VSRLAB_SLURMCTLD_PORT / VSRLAB_SLURMD_PORT"
        fi
    done
    local t0=$SECONDS
    mkdir -p "$DIR"/{state,spool,run,log}
    chmod 0755 "$DIR"
    running slurmctld || running slurmd || write_conf   # keep the config of a half-running cluster
    chmod 0644 "$CONF"
    start_munged
    if ! running slurmctld; then
        log "starting slurmctld (port $CTLD_PORT)"
        slurmctld -f "$CONF" || { log_tails; die "slurmctld did not start"; }
    fi
    if ! running slurmd; then
        log "starting slurmd (node $NODE, port $SLURMD_PORT)"
        slurmd -f "$CONF" -N "$NODE" || { log_tails; die "slurmd did not start"; }
    fi
    local state=""
    while (( SECONDS - t0 < START_TIMEOUT )); do
        state=$(cluster_state)
        [[ $state == idle || $state == mixed || $state == allocated ]] && break
        if (( SECONDS - t0 >= 3 )) && ! { running slurmctld && running slurmd; }; then
            state="a daemon exited"; break
        fi
        # a node left down/drained by an earlier run: bring it back
        if [[ $state == down* || $state == drain* ]]; then
            scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        fi
        sleep 1
    done
    if [[ $state != idle && $state != mixed && $state != allocated ]]; then
        log_tails
        die "node $NODE is not idle after $((SECONDS - t0))s (state: '${state:-no answer from slurmctld}');" \
            "'$0 stop' stops what did start"
    fi
    log "cluster vsrlab up in $((SECONDS - t0))s: node $NODE $state, partition debug ($DIR)"
    echo "export SLURM_CONF=$CONF"
}

stop_daemon() {  # SIGTERM, then SIGKILL after 15 s
    local name=$1 pid _
    pid=$(pid_of "$name") || return 0
    log "stopping $name ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || { rm -f "${PIDFILE[$name]}"; return 0; }; sleep 0.1; done
    log "$name ($pid) ignored SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "${PIDFILE[$name]}"
}

cmd_stop() {
    local purge=0
    case ${1:-} in
        --purge) purge=1 ;;
        "") ;;
        *) die "stop takes only --purge" ;;
    esac
    if [[ $(id -u) -ne 0 ]] && { running slurmd || running slurmctld || running munged; }; then
        die "stopping the daemons needs root: run '$0 stop' as root"
    fi
    if running slurmctld; then
        local jobs waited
        mapfile -t jobs < <(squeue -h -o %A 2>/dev/null || true)
        if (( ${#jobs[@]} )); then
            log "cancelling jobs: ${jobs[*]}"
            scancel "${jobs[@]}" 2>/dev/null || true
            # let slurmd kill the job steps (KillWait=5) before it goes away
            for waited in $(seq 30); do
                [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break
                sleep 1
            done
            (( waited < 30 )) || log "jobs still listed after 30 s: $(squeue -h -o '%A %T' | tr '\n' ' ')"
        fi
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    if [[ $purge -eq 1 ]]; then
        log "removing $DIR"
        rm -rf "$DIR"
    fi
    log "stopped"
}

cmd_status() {
    local ok=0 name pid
    for name in munged slurmctld slurmd; do
        if pid=$(pid_of "$name"); then echo "$name: running (pid $pid)"; else echo "$name: not running"; ok=1; fi
    done
    echo "SLURM_CONF=$CONF"
    if running slurmctld; then
        sinfo 2>&1 || true
        squeue 2>&1 || true
    fi
    return $ok
}

case ${1:-} in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop [--purge]|status|env" >&2; exit 2 ;;
esac
