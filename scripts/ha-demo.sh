#!/usr/bin/env bash
# A two-node kine HA pair on one machine, in two network namespaces (the e2e tests' lab,
# Tests/e2e/hanet.py): a PostgreSQL and a kine per namespace, joined by a veth pair
# (10.77.0.1 = node a, the primary; 10.77.0.2 = node b). etcd clients reach each node through a
# unix socket in its directory.
#
#   scripts/ha-demo.sh [start] [--async]   start the pair (sync replication unless --async)
#   scripts/ha-demo.sh status              both nodes' `kine ha status --json`
#   scripts/ha-demo.sh stop                kill everything, delete the namespaces and the dir
#
# Run as root (ip netns, runuser). Uses $KINE_BIN, else .build/release/kine, else
# .build/debug/kine, else builds one with `swift build -c release`. State lives in
# $KINE_HA_DEMO_DIR (default /tmp/kha-demo); the namespaces are khademoa and khademob.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${KINE_HA_DEMO_DIR:-/tmp/kha-demo}"
LAB=(python3 "$ROOT/Tests/e2e/hanet.py")

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
        *) die "unknown option: $1" ;;
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

[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, runuser)"
cmd="${1:-start}"
[ $# -gt 0 ] && shift
case "$cmd" in
    start) start "$@" ;;
    status) "${LAB[@]}" status "$DIR" ;;
    stop) "${LAB[@]}" stop "$DIR" ;;
    -h|--help|help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "usage: $0 [start [--async] | status | stop]" ;;
esac
