#!/usr/bin/env bash
# Prepares a PostgreSQL (15+) on one node of a two-node kine HA pair (docs/ha.md); run it on both
# nodes. scripts/ha-postgres.sh --help.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/ha-postgres.sh --peer ADDR [options]

Prepares a PostgreSQL (15+) on one node of a two-node kine HA pair (docs/ha.md;
reference/ha.md 2.2, 2.3, 6.3). Run it on both nodes.

Connection (one of; default: the local server over its unix socket, as the postgres user when
run as root, else as the current user):
  --conn CONNINFO     a libpq connection string or URL to a running server (as a superuser)
  --datadir DIR       the server's data directory; if it runs, connect through its socket;
                      if it is stopped, only write the settings into DIR/kine-ha.conf (included
                      from postgresql.conf) and print what to do next

What it does:
  * ALTER SYSTEM: wal_level=logical, max_wal_senders, max_replication_slots,
    max_worker_processes=16, wal_sender_timeout=wal_receiver_timeout=10s,
    wal_retrieve_retry_interval=2s, max_slot_wal_keep_size, track_commit_timestamp=on
    (and listen_addresses with --listen); reloads, then names the settings that still need a
    restart
  * creates the database (default kubernetes) and a login role for kine (default kine) with a
    password; superuser, because PostgreSQL 15 lets only superusers manage subscriptions
  * prints the pg_hba.conf lines for the peer (and loopback); --append-hba adds them to the
    server's hba_file and reloads

Options:
  --peer ADDR         the other node's address (required for the pg_hba lines; an address, an
                      IPv6 address or a CIDR network)
  --role NAME         kine's role (default kine; a plain lower-case identifier)
  --password PW       its password (default $KINE_HA_PASSWORD, else a random one, printed)
  --database NAME     default kubernetes (a plain lower-case identifier)
  --wal-keep SIZE     max_slot_wal_keep_size: WAL kept for a down follower (default 2GB)
  --slots N           max_replication_slots and max_wal_senders (default 10)
  --listen ADDRS      listen_addresses, e.g. '*' or '127.0.0.1,10.0.0.1' (needs a restart)
  --append-hba        append the pg_hba lines (skipped if already there) and reload
  -h, --help          this help

Environment:
  KINE_HA_PASSWORD    the role's password when --password is not given

Examples:
  sudo scripts/ha-postgres.sh --peer 10.0.0.2 --listen '*' --append-hba     # on node 10.0.0.1
  KINE_HA_PASSWORD=... scripts/ha-postgres.sh --peer 10.0.0.1 \
      --conn 'postgres://postgres:PW@127.0.0.1/postgres'                     # on node 10.0.0.2
  sudo scripts/ha-postgres.sh --peer 10.0.0.2 --datadir /var/lib/postgresql/15/main
EOF
}

die() { echo "ha-postgres.sh: $*" >&2; exit 1; }

CONN="" DATADIR="" PEER="" ROLE=kine PASSWORD="${KINE_HA_PASSWORD:-}" DATABASE=kubernetes
WAL_KEEP=2GB SLOTS=10 LISTEN="" APPEND_HBA=0
while [ $# -gt 0 ]; do
    case "$1" in
        --conn|--datadir|--peer|--role|--password|--database|--wal-keep|--slots|--listen)
            [ $# -ge 2 ] || { echo "ha-postgres.sh: $1 needs a value" >&2; usage >&2; exit 2; } ;;
    esac
    case "$1" in
        --conn) CONN="$2"; shift 2 ;;
        --datadir) DATADIR="$2"; shift 2 ;;
        --peer) PEER="$2"; shift 2 ;;
        --role) ROLE="$2"; shift 2 ;;
        --password) PASSWORD="$2"; shift 2 ;;
        --database) DATABASE="$2"; shift 2 ;;
        --wal-keep) WAL_KEEP="$2"; shift 2 ;;
        --slots) SLOTS="$2"; shift 2 ;;
        --listen) LISTEN="$2"; shift 2 ;;
        --append-hba) APPEND_HBA=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ha-postgres.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$ROLE" =~ ^[a-z_][a-z0-9_]*$ ]] || die "--role must be a plain lower-case identifier"
[[ "$DATABASE" =~ ^[a-z_][a-z0-9_]*$ ]] || die "--database must be a plain lower-case identifier"
[[ "$SLOTS" =~ ^[0-9]+$ ]] || die "--slots must be a number"
[ -n "$PEER" ] || die "--peer ADDR is required (the other node's address, for pg_hba.conf)"
# Without --conn: the local server's socket as the postgres OS user (peer authentication).
AS_POSTGRES=0
[ -z "$CONN" ] && [ "$(id -u)" -eq 0 ] && AS_POSTGRES=1
case "$PEER" in */*) PEER_NET="$PEER" ;; *:*) PEER_NET="$PEER/128" ;; *) PEER_NET="$PEER/32" ;; esac

# name=value, as ALTER SYSTEM takes them. All of these are read at server start or on reload;
# pending_restart tells which ones need the restart.
SETTINGS=(
    "wal_level=logical"
    "max_wal_senders=$SLOTS"
    "max_replication_slots=$SLOTS"
    "max_worker_processes=16"
    "wal_sender_timeout=10s"
    "wal_receiver_timeout=10s"
    "wal_retrieve_retry_interval=2s"
    "max_slot_wal_keep_size=$WAL_KEEP"
    "track_commit_timestamp=on"
)
[ -n "$LISTEN" ] && SETTINGS+=("listen_addresses=$LISTEN")

as_pg() {
    if [ "$AS_POSTGRES" -eq 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psql_run() { as_pg psql -X -q -At -v ON_ERROR_STOP=1 -d "$CONN" "$@"; }

# A data dir: connect through the running server's socket (postmaster.pid lines 4 and 5), or,
# if it is stopped, write the settings into an included file and stop there.
if [ -n "$DATADIR" ]; then
    [ -f "$DATADIR/PG_VERSION" ] || die "$DATADIR is not a PostgreSQL data directory"
    pid="$(head -n 1 "$DATADIR/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        port="$(sed -n 4p "$DATADIR/postmaster.pid")"
        sock="$(sed -n 5p "$DATADIR/postmaster.pid")"
        CONN="host=${sock:-/var/run/postgresql} port=$port dbname=postgres user=postgres"
    else
        conf="$DATADIR/kine-ha.conf"
        { echo "# Written by scripts/ha-postgres.sh (kine two-node HA)."
          for s in "${SETTINGS[@]}"; do echo "${s%%=*} = '${s#*=}'"; done; } >"$conf"
        grep -q "kine-ha.conf" "$DATADIR/postgresql.conf" \
            || echo "include_if_exists = 'kine-ha.conf'" >>"$DATADIR/postgresql.conf"
        chown --reference="$DATADIR" "$conf" 2>/dev/null || true
        echo "server not running: settings written to $conf (included from postgresql.conf)."
        echo "Start the server, then run this again with --datadir $DATADIR to create the role and"
        echo "database and print the pg_hba.conf lines."
        exit 0
    fi
fi
if [ -z "$CONN" ]; then
    CONN="dbname=postgres"
fi
psql_run -c "SELECT 1" >/dev/null || die "cannot connect: $CONN"
[ "$(psql_run -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" = t ] \
    || die "connect as a superuser (ALTER SYSTEM, CREATE ROLE ... SUPERUSER)"

# 1. Settings.
for s in "${SETTINGS[@]}"; do
    psql_run -v name="${s%%=*}" -v value="${s#*=}" <<<"ALTER SYSTEM SET :\"name\" = :'value';"
done
psql_run -c "SELECT pg_reload_conf()" >/dev/null
sleep 1  # the reload is asynchronous; pending_restart is accurate once it is processed
echo "settings applied (ALTER SYSTEM, reloaded)."
restart="$(psql_run -c "SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart")"
if [ -n "$restart" ]; then
    echo "RESTART NEEDED for: $restart (e.g. systemctl restart postgresql, or pg_ctl restart -D DATADIR)"
else
    echo "no restart needed."
fi

# 2. Role and database. The password goes in through a psql variable, never into a command line.
generated=0
if [ -z "$PASSWORD" ]; then
    PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    generated=1
fi
psql_run -v role="$ROLE" -v pw="$PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN SUPERUSER', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" LOGIN SUPERUSER PASSWORD :'pw';
SQL
psql_run -v role="$ROLE" -v db="$DATABASE" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
echo "role $ROLE (superuser, login) and database $DATABASE ready."
[ "$generated" -eq 1 ] && echo "password for $ROLE (generated): $PASSWORD"

# 3. pg_hba.conf. Logical replication connections name a database, so they match the database
# line (the `replication` keyword is for physical replication only).
method=host
[ "$(psql_run -c "SHOW ssl")" = on ] && method=hostssl
HBA_LINES="# kine two-node HA (scripts/ha-postgres.sh): kine's own connections and the peer's
$method  $DATABASE  $ROLE  127.0.0.1/32  scram-sha-256
$method  $DATABASE  $ROLE  $PEER_NET  scram-sha-256"
hba_file="$(psql_run -c "SHOW hba_file")"
if [ "$APPEND_HBA" -eq 1 ]; then
    if grep -q "^$method  $DATABASE  $ROLE  $PEER_NET " "$hba_file" 2>/dev/null; then
        echo "pg_hba.conf ($hba_file) already has the lines."
    else
        # Before any broader rule: PostgreSQL uses the first line that matches.
        tmp="$(mktemp)"
        { echo "$HBA_LINES"; cat "$hba_file"; } >"$tmp"
        cat "$tmp" >"$hba_file"
        rm -f "$tmp"
        psql_run -c "SELECT pg_reload_conf()" >/dev/null
        echo "pg_hba.conf lines added at the top of $hba_file and reloaded."
    fi
else
    echo "add to $hba_file (above broader rules), then reload (SELECT pg_reload_conf()):"
    echo "$HBA_LINES"
fi
[ "$method" = host ] && echo "note: ssl is off; with TLS configured use hostssl lines (docs/ha.md)."
listen="$(psql_run -c "SHOW listen_addresses")"
case "$listen" in
    localhost|127.0.0.1|"") echo "note: listen_addresses = '$listen': the peer cannot connect (use --listen)." ;;
esac
