#!/usr/bin/env bash
# Runs one libFuzzer target with address sanitizer (scripts/fuzz.sh --help).
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]

Runs one libFuzzer target with address sanitizer.

Arguments:
  TARGET   deframer | http2-server | request-decoders | gateway
  SECONDS  how long to fuzz (libFuzzer -max_total_time); 0 with -runs=N runs N inputs instead
  libFuzzer options
           passed to the fuzzer after the defaults (-artifact_prefix, -print_final_stats=1,
           -rss_limit_mb=4096, -max_len=4096), e.g. -runs=1000 or -jobs=2
  -h, --help  this help

Builds the target optimized into .build-fuzz with -sanitize=fuzzer,address (the first build compiles the
dependencies too, a few minutes), and the plain debug build of the same product, which writes the seed
corpus. The corpus grows in .build-fuzz/corpus/TARGET, seeded with the well-formed inputs of
Fuzz/Targets; a finding (a property broken, a crash, an ASan report) is saved as
.build-fuzz/findings/TARGET/crash-* and fails the run. Replay one with the plain
build: swift build --product FuzzX && .build/debug/FuzzX FILE.

Uses the Swift toolchain in /opt/swift/usr/bin (put first on PATH); reads no other environment.

Examples:
  scripts/fuzz.sh deframer 60             # one minute on the deframer target
  scripts/fuzz.sh gateway 0 -runs=10000   # 10,000 inputs, then stop
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[[ $# -ge 2 ]] || { usage >&2; exit 2; }
target="$1" seconds="$2"
shift 2
case "$target" in
  deframer) product=FuzzDeframer ;;
  http2-server) product=FuzzHTTP2Server ;;
  request-decoders) product=FuzzRequestDecoders ;;
  gateway) product=FuzzGateway ;;
  *) echo "unknown target $target (deframer, http2-server, request-decoders, gateway)" >&2; usage >&2; exit 2 ;;
esac
export PATH="/opt/swift/usr/bin:$PATH"
build="$root/.build-fuzz"
cd "$root"

# The plain replayer writes the seed corpus; the sanitized build is the fuzzer.
swift build --product "$product" >/dev/null
swift build -c release --build-path "$build" --product "$product" \
  -Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >/dev/null
corpus="$build/corpus/$target" findings="$build/findings/$target"
mkdir -p "$corpus" "$findings"
"$root/.build/debug/$product" --write-seeds "$corpus"

options=(-artifact_prefix="$findings/" -print_final_stats=1 -rss_limit_mb=4096 -max_len=4096)
[[ "$seconds" != 0 ]] && options+=(-max_total_time="$seconds")
echo "==> fuzzing $target (${seconds}s) with corpus $corpus"
"$build/release/$product" "${options[@]}" "$@" "$corpus"
