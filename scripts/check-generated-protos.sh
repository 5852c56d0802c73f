#!/usr/bin/env bash
# Fails (exit 1) when the committed protobuf-c code in Sources/CEtcdProto is not exactly what
# scripts/generate-protos.sh produces from Protos/ today. CI runs this.
set -euo pipefail

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
