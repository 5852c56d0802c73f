#!/usr/bin/env bash
# Start, stop or query a throw-away PostgreSQL server for kine's tests and local runs
# (scripts/postgres.sh --help).
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/postgres.sh start  [DATADIR] [PORT]   # prints postgres://postgres@127.0.0.1:PORT/postgres
       scripts/postgres.sh stop   [DATADIR]
       scripts/postgres.sh status [DATADIR]          # prints the URL and exits 0 if running, else exits 3

Start, stop or query a throw-away PostgreSQL server for kine's tests and local runs.

Arguments:
  DATADIR     the data directory (default /tmp/kine-pg)
  PORT        TCP port on 127.0.0.1 (default 5432)
  -h, --help  this help

start runs as root on a fresh Debian machine: installs postgresql + libpq-dev when missing (without
Debian's "main" cluster), initdb's DATADIR as the `postgres` user with trust authentication on the
unix socket and 127.0.0.1, and starts the server listening on 127.0.0.1:PORT and on a unix socket
inside DATADIR (settings in DATADIR/kine.conf, rewritten on every start). Idempotent: a server
already running on DATADIR just prints its URL (with its own port). stop is a fast shutdown.
Only the URL goes to stdout; everything else goes to stderr. Run as root or as the postgres user.

Durability settings are left at PostgreSQL's defaults (fsync=on, synchronous_commit=on):
kine promises etcd's durability. wal_level=logical prepares for the two-node HA setup.
Reads no environment.

Examples:
  url=$(scripts/postgres.sh start /tmp/kine-dev/pg 55433)
  scripts/postgres.sh status /tmp/kine-dev/pg
  scripts/postgres.sh stop /tmp/kine-dev/pg
EOF
}

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

cmd="${1:-}"
datadir="${2:-/tmp/kine-pg}"
port="${3:-5432}"
pg_user=postgres

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$pg_user" -- "$@"
    elif [ "$(id -un)" = "$pg_user" ]; then
        "$@"
    else
        die "run as root or as the $pg_user user"
    fi
}

find_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    fi
}

have_libpq_dev() { [ -f /usr/include/postgresql/libpq-fe.h ]; }

install_packages() {
    if [ -n "$(find_bindir)" ] && have_libpq_dev; then return 0; fi
    [ "$(id -u)" -eq 0 ] || die "postgresql or libpq-dev missing and not root; install them first"
    command -v apt-get >/dev/null || die "postgresql missing and apt-get not available"
    # Do not let the Debian package create and start its own "main" cluster on port 5432.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/kine-no-main-cluster.conf
    export DEBIAN_FRONTEND=noninteractive
    log "installing postgresql libpq-dev"
    if ! apt-get install -y -q postgresql libpq-dev >&2; then
        log "install failed; running apt-get update once and retrying"
        apt-get update -q >&2
        apt-get install -y -q postgresql libpq-dev >&2
    fi
    [ -n "$(find_bindir)" ] || die "postgresql server binaries not found after install"
}

url_for() { echo "postgres://postgres@127.0.0.1:$1/postgres"; }

# Port of the server running on $datadir (line 4 of postmaster.pid), or empty.
running_port() {
    local bindir="$1"
    [ -f "$datadir/postmaster.pid" ] || return 0
    if as_postgres "$bindir/pg_ctl" status -D "$datadir" >/dev/null 2>&1; then
        sed -n 4p "$datadir/postmaster.pid"
    fi
}

wait_ready() {
    local bindir="$1" p="$2" i
    for i in $(seq 1 120); do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$p" -U postgres -d postgres; then return 0; fi
        sleep 0.5
    done
    die "server on port $p did not become ready; see $datadir/log/postgres.log"
}

ensure_role_and_db() {
    local bindir="$1" p="$2"
    local psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$datadir" -p "$p" -U "$pg_user" -d template1 -tA)
    if [ "$(as_postgres "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'postgres'")" != 1 ]; then
        as_postgres "${psql[@]}" -c "CREATE ROLE postgres SUPERUSER LOGIN" >&2
    fi
    if [ "$(as_postgres "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'postgres'")" != 1 ]; then
        as_postgres "${psql[@]}" -c "CREATE DATABASE postgres OWNER postgres" >&2
    fi
}

start() {
    case "$port" in ''|*[!0-9]*) die "bad port: $port" ;; esac
    install_packages
    local bindir
    bindir="$(find_bindir)"
    [ -n "$bindir" ] || die "postgresql server binaries not found"

    local current
    current="$(running_port "$bindir")"
    if [ -n "$current" ]; then
        [ "$current" = "$port" ] || log "already running on $datadir with port $current (not $port)"
        wait_ready "$bindir" "$current"
        url_for "$current"
        return 0
    fi

    if [ ! -f "$datadir/PG_VERSION" ]; then
        log "initdb $datadir"
        mkdir -p "$datadir"
        chown "$pg_user:" "$datadir"
        chmod 700 "$datadir"
        as_postgres "$bindir/initdb" -D "$datadir" -U postgres --auth=trust -E UTF8 --no-locale >&2
        echo "include_if_exists = 'kine.conf'" >>"$datadir/postgresql.conf"
    fi
    mkdir -p "$datadir/log"
    chown "$pg_user:" "$datadir/log"

    # Settings rewritten on every start (the port may change between runs).
    cat >"$datadir/kine.conf" <<EOF
# Written by scripts/postgres.sh on every start.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$datadir'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
EOF
    chown "$pg_user:" "$datadir/kine.conf"
    # trust on the unix socket and loopback (initdb --auth=trust already does this; keep it explicit).
    cat >"$datadir/pg_hba.conf" <<EOF
# Written by scripts/postgres.sh: a local test server, trust on local and loopback only.
local   all          all                  trust
host    all          all    127.0.0.1/32  trust
host    all          all    ::1/128       trust
local   replication  all                  trust
host    replication  all    127.0.0.1/32  trust
EOF
    chown "$pg_user:" "$datadir/pg_hba.conf"

    log "starting on 127.0.0.1:$port (data $datadir)"
    as_postgres "$bindir/pg_ctl" start -D "$datadir" -w -t 120 -l "$datadir/log/postgres.log" >&2 \
        || die "pg_ctl start failed; see $datadir/log/postgres.log"
    wait_ready "$bindir" "$port"
    ensure_role_and_db "$bindir" "$port"
    url_for "$port"
}

stop() {
    local bindir
    bindir="$(find_bindir)"
    [ -n "$bindir" ] || die "postgresql server binaries not found"
    if [ -n "$(running_port "$bindir")" ]; then
        as_postgres "$bindir/pg_ctl" stop -D "$datadir" -m fast -w >&2
    else
        log "not running ($datadir)"
    fi
}

status() {
    local bindir current
    bindir="$(find_bindir)"
    [ -n "$bindir" ] || { log "postgresql not installed"; exit 3; }
    current="$(running_port "$bindir")"
    if [ -n "$current" ]; then
        url_for "$current"
    else
        log "not running ($datadir)"
        exit 3
    fi
}

case "$cmd" in
    start) start ;;
    stop) datadir="${2:-/tmp/kine-pg}"; stop ;;
    status) datadir="${2:-/tmp/kine-pg}"; status ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
