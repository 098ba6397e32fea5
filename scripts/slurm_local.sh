#!/usr/bin/env bash
# A real SLURM cluster on this machine, for vsrlab's SLURM tests (sbatch, srun, --signal, requeue,
# submitit, multi-node steps, sacct). All state lives in one folder:
#
#     VSRLAB_SLURM_DIR   (default /tmp/vsrlab-slurm)
#         slurm.conf            the cluster's configuration (clients need SLURM_CONF=<dir>/slurm.conf)
#         slurmdbd.conf         slurmdbd's configuration (mode 0600: it holds the database password)
#         state/ spool/<node>/ run/ log/   slurmctld state, slurmd spools, pid files + sockets, logs
#         mysql/                MariaDB's data (the accounting database slurm_acct_db)
#         munge/                munge key, socket, pid file and log (munged runs as the munge user)
#
# Usage:
#     scripts/slurm_local.sh start            install SLURM + munge (+ slurmdbd, MariaDB) if needed
#                                             (root, Debian/Ubuntu), start munged, mariadbd, slurmdbd,
#                                             slurmctld and one slurmd per node; wait until every node
#                                             is idle; prints `export SLURM_CONF=...`
#     scripts/slurm_local.sh stop [--purge]   cancel all jobs, stop the daemons; --purge removes the
#                                             folder and the cluster's line in /etc/hosts
#     scripts/slurm_local.sh status           daemons, sinfo, squeue; exit 0 only if all daemons run
#     scripts/slurm_local.sh env              prints `export SLURM_CONF=...`:
#                                                 eval "$(scripts/slurm_local.sh env)"
#
# Environment (ports on 127.0.0.1; the defaults follow VSRLAB_SLURMCTLD_PORT, so a second cluster
# needs only other VSRLAB_SLURMCTLD_PORT / VSRLAB_SLURMD_PORT):
#     VSRLAB_SLURM_DIR            state folder (/tmp/vsrlab-slurm)
#     VSRLAB_SLURM_NODES          number of nodes, vsrlab-n1 .. vsrlab-nN (2)
#     VSRLAB_SLURM_ACCOUNTING     1: slurmdbd + MariaDB, sacct works (default); 0: no accounting
#     VSRLAB_SLURMCTLD_PORT       slurmctld (16817)
#     VSRLAB_SLURMD_PORT          slurmd of vsrlab-n1; node i listens on this + i - 1 (16818)
#     VSRLAB_SLURMDBD_PORT        slurmdbd (VSRLAB_SLURMCTLD_PORT - 1: 16816; not 16819, which is
#                                 vsrlab-n2's slurmd port)
#     VSRLAB_MARIADB_PORT         MariaDB (VSRLAB_SLURMCTLD_PORT - 11: 16806)
#     VSRLAB_SLURM_START_TIMEOUT  seconds to wait for each of slurmdbd and the idle nodes (60)
# Starting and stopping the daemons needs root (SlurmUser=root, slurmd runs jobs as their users;
# mariadbd runs as root too, so the state folder may be anywhere).
# The cluster: ClusterName vsrlab (registered in slurmdbd before slurmctld starts), N nodes on this
# machine, each its own slurmd (`slurmd -N vsrlab-nI`, address 127.0.0.1, all CPUs of the machine,
# 90% of its memory / N), partition `debug` (default, no time limit, all nodes), JobRequeue=1,
# MinJobAge=5 s. The node names resolve through one marked line in /etc/hosts
# ("127.0.0.1 vsrlab-n1 ... # vsrlab slurm_local"): multi-node PyTorch/Lightning rendezvous uses the
# first node's name as MASTER_ADDR.
# Timings (a VM with 2 shared cores, Debian 12, SLURM 22.05.8, MariaDB 10.11, 2 nodes): first start
# on an empty folder (mariadb-install-db ~0.5 s, slurmdbd creating its tables, cluster registered)
# 4-6 s; start again on the existing folder (same database) ~3 s; stop ~1 s (~2.5 s with running
# jobs to cancel), stop --purge ~2 s; without accounting start 0.1-2 s, stop ~0.3 s.
set -euo pipefail

DIR=${VSRLAB_SLURM_DIR:-/tmp/vsrlab-slurm}
NODES=${VSRLAB_SLURM_NODES:-2}
ACCOUNTING=${VSRLAB_SLURM_ACCOUNTING:-1}
CTLD_PORT=${VSRLAB_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${VSRLAB_SLURMD_PORT:-16818}
START_TIMEOUT=${VSRLAB_SLURM_START_TIMEOUT:-60}
CONF=$DIR/slurm.conf
DBD_CONF=$DIR/slurmdbd.conf   # slurmdbd reads slurmdbd.conf beside $SLURM_CONF
MUNGE_DIR=$DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket.2
DB_DATA=$DIR/mysql
DB_SOCKET=$DIR/run/mariadbd.sock
CTLD_HOST=$(hostname -s)
HOSTS_FILE=/etc/hosts
HOSTS_MARK="# vsrlab slurm_local"
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "slurm_local: $*" >&2; }
die() { log "error: $*"; exit 1; }
# SLURM's clients wait long on a munged or slurmctld that does not answer: bounded here
client() { timeout 20 "$@"; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
for _var in NODES CTLD_PORT SLURMD_PORT START_TIMEOUT; do
    is_uint "${!_var}" || die "$_var must be a number, not '${!_var}'"
done
[[ $NODES -ge 1 ]] || die "VSRLAB_SLURM_NODES must be at least 1"
[[ $ACCOUNTING == 0 || $ACCOUNTING == 1 ]] || die "VSRLAB_SLURM_ACCOUNTING must be 0 or 1, not '$ACCOUNTING'"
DBD_PORT=${VSRLAB_SLURMDBD_PORT:-$((CTLD_PORT - 1))}
DB_PORT=${VSRLAB_MARIADB_PORT:-$((CTLD_PORT - 11))}
is_uint "$DBD_PORT" || die "VSRLAB_SLURMDBD_PORT must be a number, not '$DBD_PORT'"
is_uint "$DB_PORT" || die "VSRLAB_MARIADB_PORT must be a number, not '$DB_PORT'"
NODE_NAMES=()
for ((_i = 1; _i <= NODES; _i++)); do NODE_NAMES+=("vsrlab-n$_i"); done
if [[ $ACCOUNTING -eq 1 ]]; then PACKAGES+=(slurmdbd mariadb-server); fi
# the daemons live in sbin, which may not be on a non-login PATH
export PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF=$CONF
# MariaDB's programs: the mariadb* names, or the mysql* ones of older releases
first_command() { local c; for c in "$@"; do command -v "$c" >/dev/null && { echo "$c"; return 0; }; done; echo "$1"; }
DB_SERVER=$(first_command mariadbd mysqld)
DB_INSTALL=$(first_command mariadb-install-db mysql_install_db)
DB_CLIENT=$(first_command mariadb mysql)
DB_ADMIN=$(first_command mariadb-admin mysqladmin)

# Daemons are named munged, mariadbd, slurmdbd, slurmctld and slurmd:<node> (slurmd:vsrlab-n1);
# each writes its own pid file.
pid_file() {
    case $1 in
        munged) echo "$MUNGE_DIR/munged.pid" ;;
        slurmd:*) echo "$DIR/run/slurmd-${1#slurmd:}.pid" ;;
        *) echo "$DIR/run/$1.pid" ;;   # mariadbd, slurmdbd, slurmctld; slurmd (the old single node)
    esac
}

pid_of() {  # prints the pid of a running daemon started by this script, or fails
    local file pid program=${1%%:*}
    file=$(pid_file "$1")
    [[ -r $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid && -e /proc/$pid ]] || return 1   # (not kill -0: other users may ask too)
    # a stale pid file may name another process by now: check the program's name
    [[ $program != mariadbd ]] || program=${DB_SERVER##*/}
    [[ $(basename "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)") == "$program" ]] || return 1
    echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

conf_nodes() {  # the nodes of the existing slurm.conf (a cluster started with other settings), else ours
    if [[ -r $CONF ]] && grep -q '^NodeName=' "$CONF"; then
        sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$CONF"
    else
        printf '%s\n' "${NODE_NAMES[@]}"
    fi
}

conf_accounting() {  # 0/1: whether the existing slurm.conf (else the environment) uses slurmdbd
    if [[ -r $CONF ]]; then
        if grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$CONF"; then echo 1; else echo 0; fi
    else
        echo "$ACCOUNTING"
    fi
}

daemons() {  # the daemons of the cluster as configured ($1: 1 with accounting), in start order
    echo munged
    if [[ $1 -eq 1 ]]; then echo mariadbd; echo slurmdbd; fi
    echo slurmctld
    local node
    for node in "${@:2}"; do echo "slurmd:$node"; done
}

all_running() { local d; for d in "$@"; do running "$d" || return 1; done; }

install_packages() {
    if [[ $(id -u) -ne 0 ]]; then
        die "SLURM (or slurmdbd/MariaDB) is not installed and you are not root: install the Debian/Ubuntu packages" \
            "'${PACKAGES[*]}' (sudo apt-get install ${PACKAGES[*]}), then run '$0 start' as root"
    fi
    command -v apt-get >/dev/null || die "SLURM is missing and there is no apt-get: install ${PACKAGES[*]} yourself"
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
    DB_SERVER=$(first_command mariadbd mysqld)
    DB_INSTALL=$(first_command mariadb-install-db mysql_install_db)
    DB_CLIENT=$(first_command mariadb mysql)
    DB_ADMIN=$(first_command mariadb-admin mysqladmin)
    local tool
    for tool in $(needed_tools); do
        command -v "$tool" >/dev/null || die "the install did not provide $tool"
    done
}

needed_tools() {
    echo sbatch slurmctld slurmd munged
    if [[ $ACCOUNTING -eq 1 ]]; then echo slurmdbd sacctmgr "$DB_SERVER" "$DB_INSTALL" "$DB_CLIENT" "$DB_ADMIN"; fi
}

tools_missing() { local t; for t in $(needed_tools); do command -v "$t" >/dev/null || return 0; done; return 1; }

real_memory_mb() {  # ~90% of MemTotal / N, in MB: slurmd drains a node that has less memory than configured
    awk -v n="$NODES" '/^MemTotal:/ { printf "%d\n", $2 / 1024 * 0.9 / n }' /proc/meminfo
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

print_conf() {  # slurm.conf for the environment's settings
    local topology memory i nodes
    topology=$(node_topology)
    memory=$(real_memory_mb)
    nodes=$(IFS=,; echo "${NODE_NAMES[*]}")
    cat <<EOF
# written by scripts/slurm_local.sh: a $NODES-node cluster on one machine for tests; every path is under $DIR
ClusterName=vsrlab
SlurmctldHost=$CTLD_HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
# each node's slurmd has its own port (Port= below), from SlurmdPort up
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$DIR/state
# %n: the node's name (several slurmd on this machine, each started as slurmd -N <node>)
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
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
EOF
    if [[ $ACCOUNTING -eq 1 ]]; then
        cat <<EOF
# accounting as on a real cluster: slurmdbd (slurmdbd.conf) stores jobs and steps in MariaDB; sacct works
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# the munge socket for the connections to slurmdbd (sacctmgr, sacct, slurmctld): not AuthInfo's
AccountingStoragePass=$MUNGE_SOCKET
JobAcctGatherType=jobacct_gather/linux
EOF
    else
        cat <<EOF
# no accounting (VSRLAB_SLURM_ACCOUNTING=0): sacct has no data
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
EOF
    fi
    cat <<EOF
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
EOF
    for ((i = 1; i <= NODES; i++)); do
        echo "NodeName=vsrlab-n$i NodeAddr=127.0.0.1 Port=$((SLURMD_PORT + i - 1)) $topology RealMemory=$memory State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP"
}

print_dbd_conf() {  # slurmdbd.conf; $1: the database password
    cat <<EOF
# written by scripts/slurm_local.sh: slurmdbd of the cluster vsrlab, storing into MariaDB on 127.0.0.1:$DB_PORT
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$DIR/log/slurmdbd.log
PidFile=$(pid_file slurmdbd)
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$1
StorageLoc=slurm_acct_db
EOF
}

db_password() {  # slurmdbd's database password: the one of an existing slurmdbd.conf, else a new one
    local pass=""
    [[ -r $DBD_CONF ]] && pass=$(sed -n 's/^StoragePass=//p' "$DBD_CONF" | head -n 1)
    [[ -n $pass ]] || pass=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    echo "$pass"
}

# Writes $2 (a file's new text) to $1; a cluster whose daemons run keeps its configuration: then a
# different text is an error (the environment asks for another cluster than the one running).
put_conf() {
    local file=$1 text=$2 mode=$3 busy=$4
    if [[ -e $file ]] && [[ $(cat "$file") == "$text" ]]; then
        chmod "$mode" "$file"; chown root: "$file"
        return 0
    fi
    if [[ -n $busy ]]; then
        die "$busy runs with another $file than these settings ask for (VSRLAB_SLURM_NODES, ports," \
            "VSRLAB_SLURM_ACCOUNTING?): '$0 stop' first, or start with the settings it was started with"
    fi
    ( umask 077; printf '%s\n' "$text" >"$file.new" )
    chmod "$mode" "$file.new"; chown root: "$file.new"
    mv -f "$file.new" "$file"
}

hosts_line() {  # our line for /etc/hosts: every node name, and those of the line there now (another
                # cluster of this script, VSRLAB_SLURM_DIR, may have more nodes)
    local max=$NODES n i names=""
    n=$(awk -v m="$HOSTS_MARK" 'index($0, m) && substr($0, length($0) - length(m) + 1) == m' "$HOSTS_FILE" 2>/dev/null \
        | grep -o 'vsrlab-n[0-9]*' | sed 's/vsrlab-n//' | sort -n | tail -n 1 || true)
    [[ -n $n && $n -gt $max ]] && max=$n
    for ((i = 1; i <= max; i++)); do names+=" vsrlab-n$i"; done
    echo "127.0.0.1$names  $HOSTS_MARK"
}

without_our_line() {  # /etc/hosts without the line(s) that end with our mark
    awk -v m="$HOSTS_MARK" '!(index($0, m) && substr($0, length($0) - length(m) + 1) == m)' "$HOSTS_FILE"
}

update_hosts() {  # node names resolve: replace our marked line in /etc/hosts, never touch the others
    local line new
    line=$(hosts_line)
    grep -qxF -- "$line" "$HOSTS_FILE" 2>/dev/null && return 0
    new=$(without_our_line; echo "$line")
    # written in place (not renamed over): /etc/hosts is often a bind mount in containers
    if printf '%s\n' "$new" >"$HOSTS_FILE" 2>/dev/null; then
        log "$HOSTS_FILE: $line"
    else
        log "warning: cannot write $HOSTS_FILE: the node names ${NODE_NAMES[*]} do not resolve" \
            "(multi-node PyTorch rendezvous needs them; add '$line' yourself)"
    fi
}

remove_hosts_line() {
    grep -q -- "$HOSTS_MARK" "$HOSTS_FILE" 2>/dev/null || return 0
    # slurmd processes still running belong to another cluster of this script: it needs the names
    if ps -eo stat=,comm= 2>/dev/null | awk '$2 == "slurmd" && $1 !~ /^Z/ { found = 1 } END { exit !found }'; then
        log "keeping the vsrlab-n* line in $HOSTS_FILE: slurmd of another cluster still runs"
        return 0
    fi
    local new
    new=$(without_our_line)
    printf '%s\n' "$new" >"$HOSTS_FILE" || log "warning: cannot remove the vsrlab-n* line from $HOSTS_FILE"
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
    local args=(--socket="$MUNGE_SOCKET" --key-file="$key" --pid-file="$(pid_file munged)"
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

db_sql() {  # runs SQL as MariaDB's root (unix-socket authentication: we are root)
    "$DB_CLIENT" --no-defaults --protocol=socket --socket="$DB_SOCKET" -uroot -e "$1"
}

db_answers() { "$DB_ADMIN" --no-defaults --protocol=socket --socket="$DB_SOCKET" -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

start_mariadb() {
    if ! running mariadbd; then
        if [[ ! -d $DB_DATA/mysql ]]; then
            log "creating the MariaDB data folder $DB_DATA"
            local extra=()
            # (no anonymous users nor test database; not an option of older releases)
            grep -q -- --skip-test-db <<<"$("$DB_INSTALL" --help 2>/dev/null)" && extra+=(--skip-test-db)
            rm -rf "$DB_DATA.new"
            "$DB_INSTALL" --no-defaults --datadir="$DB_DATA.new" --user=root --skip-name-resolve "${extra[@]}" \
                >"$DIR/log/mariadb-install-db.log" 2>&1 \
                || { tail -n 25 "$DIR/log/mariadb-install-db.log" >&2; die "$DB_INSTALL failed (log: $DIR/log/mariadb-install-db.log)"; }
            rm -rf "$DB_DATA"
            mv "$DB_DATA.new" "$DB_DATA"
        fi
        chmod 0700 "$DB_DATA"
        rm -f "$DB_SOCKET" "$DB_SOCKET.lock"
        log "starting mariadbd (127.0.0.1:$DB_PORT)"
        # not a daemon by itself: its own session (no terminal's signals), all output to its log (a
        # caller reading our stdout, as in $(... start), must not wait for it). A buffer pool of
        # 512M (allocated as used) and the lock wait timeout keep slurmdbd from logging
        # "Database settings not recommended values".
        setsid "$DB_SERVER" --no-defaults --user=root --datadir="$DB_DATA" --socket="$DB_SOCKET" \
            --pid-file="$(pid_file mariadbd)" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
            --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=512M --innodb-lock-wait-timeout=900 \
            </dev/null >>"$DIR/log/mariadb.log" 2>&1 &
    fi
    local t0=$SECONDS
    until db_answers; do
        if (( SECONDS - t0 >= 3 )) && ! running mariadbd; then
            log_tails; die "mariadbd exited (log: $DIR/log/mariadb.log)"
        fi
        (( SECONDS - t0 < START_TIMEOUT )) || { log_tails; die "mariadbd does not answer after ${START_TIMEOUT}s"; }
        sleep 0.5
    done
    chmod 0644 "$(pid_file mariadbd)" 2>/dev/null || true   # `status` of other users
    # slurmdbd's database user (TCP from 127.0.0.1); the password is the one in slurmdbd.conf
    local pass=$1 host
    for host in 127.0.0.1 localhost; do
        db_sql "CREATE USER IF NOT EXISTS 'slurm'@'$host' IDENTIFIED BY '$pass';
                ALTER USER 'slurm'@'$host' IDENTIFIED BY '$pass';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'$host';" \
            || die "cannot create slurmdbd's database user in MariaDB (log: $DIR/log/mariadb.log)"
    done
}

start_slurmdbd() {
    if ! running slurmdbd; then
        log "starting slurmdbd (port $DBD_PORT)"
        slurmdbd || { log_tails; die "slurmdbd did not start"; }
    fi
    # slurmdbd answers once its tables exist (the first start creates them); then the cluster is
    # registered, before slurmctld starts (as on a real cluster)
    local t0=$SECONDS clusters
    until clusters=$(timeout 20 sacctmgr -n -P show cluster format=cluster 2>/dev/null); do
        if (( SECONDS - t0 >= 3 )) && ! running slurmdbd; then
            log_tails; die "slurmdbd exited (log: $DIR/log/slurmdbd.log)"
        fi
        (( SECONDS - t0 < START_TIMEOUT )) || { log_tails; die "slurmdbd does not answer after ${START_TIMEOUT}s"; }
        sleep 1
    done
    if ! grep -qx vsrlab <<<"$clusters"; then
        log "registering the cluster vsrlab in slurmdbd"
        client sacctmgr -i add cluster vsrlab >&2 || die "sacctmgr -i add cluster vsrlab failed"
    fi
}

port_in_use() {  # something listens on 127.0.0.1:$1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

node_states() {  # "node state" lines as sinfo reports them (idle, down*, ...), empty if slurmctld does not answer
    client sinfo -h -N -o '%N %T' 2>/dev/null || true
}

log_tails() {
    local f
    for f in "$MUNGE_DIR/munged.log" "$DIR/log/mariadb.log" "$DIR/log/slurmdbd.log" "$DIR/log/slurmctld.log" \
             "$DIR"/log/slurmd-*.log; do
        [[ -r $f ]] && { echo "==> $f <=="; tail -n 25 "$f"; }
    done >&2
    return 0
}

cmd_start() {
    tools_missing && install_packages
    local wanted
    mapfile -t wanted < <(daemons "$ACCOUNTING" "${NODE_NAMES[@]}")
    if all_running "${wanted[@]}" && [[ -r $CONF ]] && [[ $(cat "$CONF") == "$(print_conf)" ]]; then
        log "already running ($DIR): $(node_states | tr '\n' ' ')"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "starting the daemons needs root (SlurmUser=root); run '$0 start' as root"
    # every port its own; one that is taken (and not by the daemon of ours that owns it) stops us
    local -A port_of=([slurmctld]=$CTLD_PORT)
    local i name port busy=""
    for ((i = 1; i <= NODES; i++)); do port_of[slurmd:vsrlab-n$i]=$((SLURMD_PORT + i - 1)); done
    if [[ $ACCOUNTING -eq 1 ]]; then port_of[slurmdbd]=$DBD_PORT; port_of[mariadbd]=$DB_PORT; fi
    if [[ $(printf '%s\n' "${port_of[@]}" | sort | uniq -d) ]]; then
        die "the ports overlap: slurmctld $CTLD_PORT, slurmd $SLURMD_PORT..$((SLURMD_PORT + NODES - 1))" \
            "(one per node)$([[ $ACCOUNTING -eq 1 ]] && echo ", slurmdbd $DBD_PORT, MariaDB $DB_PORT"):" \
            "set VSRLAB_SLURMCTLD_PORT / VSRLAB_SLURMD_PORT / VSRLAB_SLURMDBD_PORT / VSRLAB_MARIADB_PORT"
    fi
    for name in "${!port_of[@]}"; do
        if ! running "$name" && port_in_use "${port_of[$name]}"; then
            die "port ${port_of[$name]} on 127.0.0.1 ($name) is in use (another SLURM or database?): choose" \
                "others with VSRLAB_SLURMCTLD_PORT / VSRLAB_SLURMD_PORT / VSRLAB_SLURMDBD_PORT / VSRLAB_MARIADB_PORT"
        fi
    done
    local t0=$SECONDS
    mkdir -p "$DIR"/{state,spool,run,log}
    chmod 0755 "$DIR"
    # a cluster of which some daemons run keeps its configuration (an error if it is not ours)
    for name in slurmctld slurmdbd $(conf_nodes | sed 's/^/slurmd:/'); do
        running "$name" && { busy=$name; break; }
    done
    put_conf "$CONF" "$(print_conf)" 0644 "$busy"
    local pass=""
    if [[ $ACCOUNTING -eq 1 ]]; then
        pass=$(db_password)
        # slurmdbd insists: owned by SlurmUser, readable by nobody else
        put_conf "$DBD_CONF" "$(print_dbd_conf "$pass")" 0600 "$(running slurmdbd && echo slurmdbd)"
    fi
    update_hosts
    start_munged
    if [[ $ACCOUNTING -eq 1 ]]; then
        start_mariadb "$pass"
        start_slurmdbd
    fi
    if ! running slurmctld; then
        log "starting slurmctld (port $CTLD_PORT)"
        slurmctld -f "$CONF" || { log_tails; die "slurmctld did not start"; }
    fi
    local node
    for ((i = 1; i <= NODES; i++)); do
        node=vsrlab-n$i
        running "slurmd:$node" && continue
        log "starting slurmd (node $node, port $((SLURMD_PORT + i - 1)))"
        mkdir -p "$DIR/spool/$node"
        slurmd -f "$CONF" -N "$node" || { log_tails; die "slurmd of $node did not start"; }
    done
    local states="" ready t1=$SECONDS state
    while (( SECONDS - t1 < START_TIMEOUT )); do
        states=$(node_states)
        ready=1
        for node in "${NODE_NAMES[@]}"; do
            state=$(awk -v n="$node" '$1 == n { print $2 }' <<<"$states")
            [[ $state == idle || $state == mixed || $state == allocated ]] && continue
            ready=0
            # a node left down/drained by an earlier run: bring it back
            if [[ $state == down* || $state == drain* ]]; then
                client scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
            fi
        done
        [[ $ready -eq 1 ]] && break
        if (( SECONDS - t1 >= 3 )) && ! all_running "${wanted[@]}"; then
            states="a daemon exited: $(for name in "${wanted[@]}"; do running "$name" || echo -n "$name "; done)"
            break
        fi
        sleep 1
    done
    if [[ $ready -ne 1 ]]; then
        log_tails
        die "the nodes are not idle after $((SECONDS - t1))s (${states:-no answer from slurmctld});" \
            "'$0 stop' stops what did start"
    fi
    log "cluster vsrlab up in $((SECONDS - t0))s: $(tr '\n' ' ' <<<"$states")partition debug," \
        "accounting $([[ $ACCOUNTING -eq 1 ]] && echo "slurmdbd :$DBD_PORT" || echo none) ($DIR)"
    echo "export SLURM_CONF=$CONF"
}

alive() {  # process $1 exists and has not exited (a zombie has: an init that is slow to reap
            # the daemons, as in some VMs and containers, keeps them as zombies for seconds)
    [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop_daemon() {  # SIGTERM, then SIGKILL after $2 s (15)
    local name=$1 pid _
    pid=$(pid_of "$name") || { rm -f "$(pid_file "$name")"; return 0; }
    log "stopping $name ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((${2:-15} * 10))); do
        alive "$pid" || { rm -f "$(pid_file "$name")"; return 0; }
        sleep 0.1
    done
    log "$name ($pid) ignored SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    rm -f "$(pid_file "$name")"
}

slurmd_names() {  # every slurmd with a pid file here (whatever VSRLAB_SLURM_NODES says now)
    local f
    for f in "$DIR"/run/slurmd-*.pid "$DIR"/run/slurmd.pid; do
        [[ -e $f ]] || continue
        f=${f##*/}; f=${f%.pid}
        if [[ $f == slurmd ]]; then echo slurmd; else echo "slurmd:${f#slurmd-}"; fi
    done
}

cmd_stop() {
    local purge=0
    case ${1:-} in
        --purge) purge=1 ;;
        "") ;;
        *) die "stop takes only --purge" ;;
    esac
    local all name
    mapfile -t all < <(echo munged; echo mariadbd; echo slurmdbd; echo slurmctld; slurmd_names)
    if [[ $(id -u) -ne 0 ]]; then
        for name in "${all[@]}"; do
            running "$name" && die "stopping the daemons needs root: run '$0 stop' as root"
        done
        [[ $purge -eq 0 ]] || die "'$0 stop --purge' needs root (/etc/hosts)"
    fi
    if running slurmctld; then
        local jobs t0=$SECONDS left=""
        mapfile -t jobs < <(client squeue -h -o %A 2>/dev/null || true)
        if (( ${#jobs[@]} )); then
            log "cancelling jobs: ${jobs[*]}"
            client scancel "${jobs[@]}" 2>/dev/null || true
            # let slurmd kill the job steps (KillWait=5) before it goes away
            while (( SECONDS - t0 < 30 )); do
                left=$(client squeue -h -o '%A %T' 2>/dev/null | tr '\n' ' ') || true
                [[ -z $left ]] && break
                sleep 1
            done
            [[ -z $left ]] || log "jobs still listed after $((SECONDS - t0)) s: $left"
        fi
    fi
    # the slurmds at once (each waits for its job steps), then the others in reverse start order:
    # slurmctld sends its last records to slurmdbd, which writes them to MariaDB
    local -a pids=()
    for name in $(slurmd_names); do stop_daemon "$name" & pids+=($!); done
    (( ${#pids[@]} == 0 )) || wait "${pids[@]}"
    stop_daemon slurmctld
    stop_daemon slurmdbd
    stop_daemon mariadbd 60   # a clean InnoDB shutdown; SIGKILL only if it hangs
    stop_daemon munged
    if [[ $purge -eq 1 ]]; then
        log "removing $DIR"
        rm -rf "$DIR"
        remove_hosts_line
    fi
    log "stopped"
}

cmd_status() {
    local ok=0 name pid accounting nodes
    accounting=$(conf_accounting)
    mapfile -t nodes < <(conf_nodes)
    for name in $(daemons "$accounting" "${nodes[@]}"); do
        if pid=$(pid_of "$name"); then echo "${name/:/ }: running (pid $pid)"; else echo "${name/:/ }: not running"; ok=1; fi
    done
    if [[ $accounting -eq 0 ]]; then  # left over from a cluster with accounting
        for name in mariadbd slurmdbd; do
            pid=$(pid_of "$name") && echo "$name: running (pid $pid), not used (no accounting)"
        done
    fi
    echo "SLURM_CONF=$CONF"
    if running slurmctld; then
        client sinfo -N -o '%N %P %T %c %m' 2>&1 || true
        client squeue 2>&1 || true
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
