# What the two test clusters share: accounting (a MariaDB server and slurmdbd of
# their own) and the slurm.conf left behind by `stop`.
# Sourced (not run) by scripts/slurm-local.sh and scripts/slurm-twonode.sh.
#
# --- accounting ----------------------------------------------------------------
# Each cluster gets its own database server and slurmdbd, so both clusters can
# run at once and stop independently:
#   - MariaDB (Debian's mariadb-server) with its data, socket and pid file in
#     $STATE_DIR/db/, listening on 127.0.0.1:$ACCT_DB_PORT only, started with
#     --no-defaults (the system's /etc/mysql and /var/lib/mysql are not used);
#     a user "slurm" with a random password (kept in $STATE_DIR/db/slurm.pass,
#     mode 600) owns the accounting database;
#   - slurmdbd (Debian's slurmdbd) on 127.0.0.1:$ACCT_DBD_PORT with its
#     slurmdbd.conf (mode 600) beside the cluster's slurm.conf, which it finds
#     through SLURM_CONF;
#   - slurm.conf gets AccountingStorageType=accounting_storage/slurmdbd and
#     jobacct_gather/linux (memory per job step: sacct MaxRSS), so sacct works
#     as on a real cluster.
# The data lives under $STATE_DIR (/run/...): it is a test cluster's history,
# not kept across reboots.
#
# The caller sets: STATE_DIR CONF_DIR LOG_DIR ACCT_CLUSTER ACCT_DB_PORT
# ACCT_DBD_PORT, optionally ACCT_MUNGE_SOCKET (a munged on its own socket:
# slurmdbd.conf's AuthInfo, and slurm.conf's AccountingStoragePass, through
# which the clients of slurmdbd, such as sacctmgr and sacct, find it; without
# it they use /run/munge/munge.socket.2 and work only while another munged with
# the same key happens to listen there), and defines log and die.

ACCT_PACKAGES=(slurmdbd mariadb-server)
ACCT_DIR=$STATE_DIR/db
ACCT_DATA=$ACCT_DIR/data
ACCT_SOCKET=$ACCT_DIR/mysqld.sock
ACCT_PASS_FILE=$ACCT_DIR/slurm.pass
ACCT_DBD_CONF=$CONF_DIR/slurmdbd.conf
# a small server: the accounting of a test cluster is a few hundred rows
ACCT_DB_ARGS=(--innodb-buffer-pool-size=16M --innodb-log-file-size=4M)

acct_pid() {  # name (mariadbd|slurmdbd) -> pid on stdout if ours and alive
    local name=$1 file pid
    file=$ACCT_DIR/$name.pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    echo "$pid"
}

acct_conf_lines() {  # the slurm.conf lines that turn accounting on
    cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$ACCT_DBD_PORT
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5
EOF
    if [[ -n ${ACCT_MUNGE_SOCKET:-} ]]; then echo "AccountingStoragePass=$ACCT_MUNGE_SOCKET"; fi
}

kill_wait() {  # signal pids...: send, wait up to KILL_WAIT_S (15) s for all to end, then SIGKILL
    local sig=$1 pid i alive
    shift
    [[ $# -gt 0 ]] || return 0
    kill "-$sig" "$@" 2>/dev/null || true
    for ((i = 0; i < ${KILL_WAIT_S:-15} * 10; i++)); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && return 0
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
}

acct_stop_pid() {  # name: SIGTERM, wait up to 30 s, then SIGKILL
    local name=$1 pid
    pid=$(acct_pid "$name") || { rm -f "$ACCT_DIR/$name.pid"; return 0; }
    log "stopping $name ($pid)"
    KILL_WAIT_S=30 kill_wait TERM "$pid"
    rm -f "$ACCT_DIR/$name.pid"
}

acct_sql() {  # statements -> run as the database's root over its socket
    mariadb --no-defaults --socket="$ACCT_SOCKET" -u root -e "$1"
}

acct_start_db() {
    acct_pid mariadbd >/dev/null && return 0
    getent passwd mysql >/dev/null || die "user 'mysql' missing (mariadb-server broken?)"
    install -d -m 0755 "$ACCT_DIR"
    local fresh=0 i
    if [[ ! -d $ACCT_DATA/mysql ]]; then
        log "creating the accounting database in $ACCT_DATA"
        rm -rf "$ACCT_DATA"
        install -d -o mysql -g mysql -m 0750 "$ACCT_DATA"
        mariadb-install-db --no-defaults --user=mysql --datadir="$ACCT_DATA" \
            --auth-root-authentication-method=socket --skip-test-db "${ACCT_DB_ARGS[@]}" \
            >"$LOG_DIR/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed (see $LOG_DIR/mariadb-install.log)"
        fresh=1
    fi
    chown mysql:mysql "$ACCT_DIR"
    rm -f "$ACCT_SOCKET" "$ACCT_DIR/mariadbd.pid"
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$ACCT_DATA" \
        --socket="$ACCT_SOCKET" --bind-address=127.0.0.1 --port="$ACCT_DB_PORT" \
        --pid-file="$ACCT_DIR/mariadbd.pid" --log-error="$LOG_DIR/mariadb.log" \
        --skip-name-resolve "${ACCT_DB_ARGS[@]}" </dev/null >/dev/null 2>&1 &
    for ((i = 0; i < 300; i++)); do
        acct_pid mariadbd >/dev/null && mariadb-admin --no-defaults --socket="$ACCT_SOCKET" -u root ping \
            >/dev/null 2>&1 && break
        sleep 0.1
    done
    acct_pid mariadbd >/dev/null || die "mariadbd did not start (see $LOG_DIR/mariadb.log)"
    if [[ $fresh -eq 1 || ! -s $ACCT_PASS_FILE ]]; then
        (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$ACCT_PASS_FILE")
        acct_sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
            ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$ACCT_PASS_FILE")';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
            die "cannot create the database user 'slurm'"
    fi
}

acct_write_dbd_conf() {
    local tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# slurmdbd of this test cluster; see scripts/slurm-common.bash
AuthType=auth/munge
${ACCT_MUNGE_SOCKET:+AuthInfo=socket=$ACCT_MUNGE_SOCKET}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$ACCT_DBD_PORT
SlurmUser=root
PidFile=$ACCT_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$ACCT_DB_PORT
StorageUser=slurm
StoragePass=$(cat "$ACCT_PASS_FILE")
StorageLoc=slurm_acct_db
EOF
    install -m 0600 -o root -g root "$tmp" "$ACCT_DBD_CONF"
    rm -f "$tmp"
}

acct_start_dbd() {  # slurmdbd, then the cluster registered in it
    local i
    if ! acct_pid slurmdbd >/dev/null; then
        acct_write_dbd_conf
        rm -f "$ACCT_DIR/slurmdbd.pid"
        /usr/sbin/slurmdbd  # daemonizes; reads slurmdbd.conf beside $SLURM_CONF
        for ((i = 0; i < 300; i++)); do
            acct_pid slurmdbd >/dev/null && sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1 && break
            sleep 0.1
        done
        acct_pid slurmdbd >/dev/null || die "slurmdbd did not start (see $LOG_DIR/slurmdbd.log)"
    fi
    sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qxF "$ACCT_CLUSTER" ||
        sacctmgr -i add cluster "$ACCT_CLUSTER" >/dev/null ||
        die "cannot register cluster $ACCT_CLUSTER with slurmdbd (see $LOG_DIR/slurmdbd.log)"
}

acct_start() {
    acct_start_db
    acct_start_dbd
}

acct_stop() {
    acct_stop_pid slurmdbd
    acct_stop_pid mariadbd
}

# --- after stop ----------------------------------------------------------------
# `stop` keeps the folder of slurm.conf but rewrites the file with
# MessageTimeout=1: a shell that still exports SLURM_CONF then gets "Unable to
# contact slurm controller (connect failure)" from scontrol/squeue/sbatch at
# once (measured: 0.01 s) instead of after ~9 s of connect retries with the
# full config (SLURM retries for MessageTimeout seconds, 10 by default), which
# made every `snakemake` call 9 s slower (the SLURM executor plugin runs
# `scontrol show config` when Snakemake loads it). A missing or unreadable
# slurm.conf is worse: the commands retry reading it for ~60 s. `start` writes
# the full file again.
write_stopped_conf() {  # conf marker
    local conf=$1 marker=$2 tmp
    [[ -f $conf ]] || return 0
    tmp=$(mktemp)
    {
        echo "$marker"
        echo "# STOPPED: this cluster is not running (start it again with the script named above)."
        echo "# MessageTimeout=1 makes the SLURM commands fail at once instead of retrying for ~9 s."
        grep -v -e '^MessageTimeout=' -e "^$marker\$" -e '^# STOPPED' -e '^# MessageTimeout=1' "$conf"
        echo "MessageTimeout=1"
    } >"$tmp"
    install -m 0644 "$tmp" "$conf"
    rm -f "$tmp"
}
