#!/usr/bin/env bash
# A two-node kine HA pair on one machine, in two network namespaces (the HA lab, Lab/hanet.py).
# Start, query and stop it; scripts/ha-demo.sh --help.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/ha-demo.sh [start [--async]]
       scripts/ha-demo.sh status
       scripts/ha-demo.sh stop

A two-node kine HA pair on one machine, in two network namespaces (the HA lab the e2e tests and
the benchmarks use, Lab/hanet.py; Lab/README.md): a PostgreSQL and a kine per namespace, joined by
a veth pair (10.77.0.1 = node a, the primary; 10.77.0.2 = node b). etcd clients reach each node
through a unix socket in its directory; `start` prints the addresses and etcdctl commands.

Commands:
  start [--async]   start the pair (the default command; sync replication unless --async)
  status            both nodes' `kine ha status --json`
  stop              kill everything, delete the namespaces and the dir
  -h, --help, help  this help

Run as root (ip netns, runuser). The kine binary must have the --ha-peer flag.

Environment:
  KINE_BIN          kine binary (default: .build/release/kine, else .build/debug/kine, else
                    one built with `swift build -c release`)
  KINE_HA_DEMO_DIR  state directory (default /tmp/kha-demo); the namespaces are khademoa and khademob
  KINE_HA_PG_BIN    PostgreSQL server binaries (read by the lab; default /usr/lib/postgresql/15/bin)

Examples:
  sudo scripts/ha-demo.sh                      # a sync pair
  sudo KINE_BIN=/tmp/kine scripts/ha-demo.sh start --async
  sudo scripts/ha-demo.sh status
  sudo scripts/ha-demo.sh stop
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${KINE_HA_DEMO_DIR:-/tmp/kha-demo}"
LAB=(python3 "$ROOT/Lab/hanet.py")

die() { echo "ha-demo.sh: $*" >&2; exit 1; }

find_kine() {
    if [ -n "${KINE_BIN:-}" ]; then echo "$KINE_BIN"; return; fi
    local cfg
    for cfg in release debug; do
        if [ -x "$ROOT/.build/$cfg/kine" ]; then echo "$ROOT/.build/$cfg/kine"; return; fi
    done
    echo "ha-demo.sh: no kine binary; building one (swift build -c release)" >&2
    (cd "$ROOT" && swift build -c release >&2)
    echo "$ROOT/.build/release/kine"
}

start() {
    local mode=sync
    case "${1:-}" in
        --async) mode=async ;;
        "") ;;
        *) echo "ha-demo.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    local kine
    kine="$(find_kine)"
    [ -x "$kine" ] || die "not executable: $kine"
    "$kine" serve --help 2>&1 | grep -q -- --ha-peer || "$kine" --help 2>&1 | grep -q -- --ha-peer \
        || die "$kine has no --ha-peer flag (built without HA?)"
    "${LAB[@]}" start "$DIR" --kine "$kine" --replication "$mode" --name demo
    echo
    echo "stop with: $0 stop"
}

case "${1:-}" in -h|--help|help) usage; exit 0 ;; esac
[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, runuser)"
cmd="${1:-start}"
[ $# -gt 0 ] && shift
case "$cmd" in
    start) start "$@" ;;
    status) "${LAB[@]}" status "$DIR" ;;
    stop) "${LAB[@]}" stop "$DIR" ;;
    *) echo "ha-demo.sh: unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac
