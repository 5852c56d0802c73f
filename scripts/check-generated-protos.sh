#!/usr/bin/env bash
# Checks that the committed protobuf-c code in Sources/CEtcdProto is what scripts/generate-protos.sh
# produces today (scripts/check-generated-protos.sh --help). CI runs this.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/check-generated-protos.sh

Fails (exit 1) when the committed protobuf-c code in Sources/CEtcdProto is not exactly what
scripts/generate-protos.sh produces from Protos/ today, and prints the difference (diff -ru).
Generates into a temporary directory (removed at the end); needs protoc-c. CI runs this
(scripts/test.sh, step 2).

Takes no arguments and reads no environment.
  -h, --help  this help

Exit status: 0 up to date, 1 stale (run scripts/generate-protos.sh and commit the result) or
protoc-c missing.
EOF
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
committed="$root/Sources/CEtcdProto"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$root/scripts/generate-protos.sh" "$tmp/CEtcdProto"

if ! diff -ru "$committed" "$tmp/CEtcdProto"; then
  echo "error: Sources/CEtcdProto is stale; run scripts/generate-protos.sh and commit the result" >&2
  exit 1
fi
echo "Sources/CEtcdProto is up to date."
