#!/usr/bin/env bash
# Runs one libFuzzer target with address sanitizer.
#
# Usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]
#   TARGET   deframer | http2-server | request-decoders | gateway
#   SECONDS  how long to fuzz (libFuzzer -max_total_time); 0 with -runs=N runs N inputs instead
#
# Builds the target optimized into .build-fuzz with -sanitize=fuzzer,address (the first build compiles the
# dependencies too, a few minutes). The corpus grows in .build-fuzz/corpus/TARGET, seeded with the
# well-formed inputs of Fuzz/Targets; a finding (a property broken, a crash, an ASan report) is
# saved as .build-fuzz/findings/TARGET/crash-* and fails the run. Replay one with the plain
# build: swift build --product FuzzX && .build/debug/FuzzX FILE.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -ge 2 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
target="$1" seconds="$2"
shift 2
case "$target" in
  deframer) product=FuzzDeframer ;;
  http2-server) product=FuzzHTTP2Server ;;
  request-decoders) product=FuzzRequestDecoders ;;
  gateway) product=FuzzGateway ;;
  *) echo "unknown target $target (deframer, http2-server, request-decoders, gateway)" >&2; exit 2 ;;
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
