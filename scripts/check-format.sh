#!/usr/bin/env bash
# Checks that the Swift sources are formatted as .swift-format says (scripts/check-format.sh --help).
set -euo pipefail
usage() {
  cat <<'EOF_USAGE'
Usage: scripts/check-format.sh [--fix]

Runs swift-format (shipped with the Swift toolchain, `swift format`) over every Swift file of the
package (Sources, Tests, Fuzz, Benchmarks, Package.swift) with the repository's .swift-format.

  (no argument)  lint in strict mode: any difference or rule finding fails (exit 1), naming the file
  --fix          rewrite the files in place, then lint
  -h, --help     this help

The test command (scripts/test.sh) runs it without --fix.
EOF_USAGE
}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
PATHS=(Sources Tests Fuzz Benchmarks Package.swift)
case "${1:-}" in
  "") ;;
  --fix) swift format format --in-place --recursive --parallel "${PATHS[@]}" ;;
  -h|--help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }
swift format lint --strict --recursive --parallel "${PATHS[@]}"
echo "swift-format: every file is formatted"
