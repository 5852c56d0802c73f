#!/usr/bin/env bash
# Run kine locally: a local PostgreSQL (scripts/postgres.sh), a release build, kine in the foreground.
# scripts/run.sh --help.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/run.sh [kine flags...]

Run kine locally: installs dependencies (scripts/install-deps.sh), starts a local PostgreSQL
(scripts/postgres.sh), builds kine in release mode (swift build -c release --product kine) and runs
it in the foreground against the database `kine` (created by kine if missing). Ctrl-C stops kine;
PostgreSQL keeps running (stop it with `scripts/postgres.sh stop "$KINE_PG_DATA"`).

Arguments:
  kine flags  passed to kine after --listen-address and --endpoint; a --listen-address or
              --endpoint given here replaces the default (kine's own help: .build/release/kine --help)
  -h, --help  this help (as the first argument)

Environment:
  KINE_LISTEN_ADDRESS  default 0.0.0.0:2379
  KINE_ENDPOINT        default postgres://postgres@127.0.0.1:$KINE_PG_PORT/kine
  KINE_PG_DATA         PostgreSQL data directory, kept between runs (default /var/lib/kine-dev/postgres)
  KINE_PG_PORT         PostgreSQL port (default 55432, away from a system server on 5432)
  PYTHON               the python scripts/install-deps.sh installs the test packages for (default python3)
Uses the Swift toolchain on PATH, else /opt/swift/usr/bin.

Examples:
  scripts/run.sh
  KINE_PG_PORT=55433 scripts/run.sh --listen-address 127.0.0.1:2379 --metrics-bind-address :8080
EOF
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

bash scripts/install-deps.sh >&2

PG_DATA="${KINE_PG_DATA:-/var/lib/kine-dev/postgres}"
PG_PORT="${KINE_PG_PORT:-55432}"
mkdir -p "$(dirname "$PG_DATA")"
chmod 755 "$(dirname "$PG_DATA")"   # the server runs as the postgres user
PG_URL="$(bash scripts/postgres.sh start "$PG_DATA" "$PG_PORT")"
ENDPOINT="${KINE_ENDPOINT:-${PG_URL%/*}/kine}"
LISTEN="${KINE_LISTEN_ADDRESS:-0.0.0.0:2379}"

swift build -c release --product kine >&2

args=()
# Flags given on the command line win over the defaults above.
case " $* " in *" --listen-address"*) ;; *) args+=(--listen-address "$LISTEN") ;; esac
case " $* " in *" --endpoint"*) ;; *) args+=(--endpoint "$ENDPOINT") ;; esac
echo "run.sh: kine ${args[*]} $*" >&2
exec "$ROOT/.build/release/kine" "${args[@]}" "$@"
