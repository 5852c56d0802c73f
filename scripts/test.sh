#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). scripts/test.sh --help.
set -uo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/test.sh

The whole test suite, as CI runs it (.ci/run calls this). Run from anywhere, as root on Debian 12
with Swift 6.3 on PATH (or at /opt/swift); installs what it needs; safe to run twice in a row.

  1. scripts/install-deps.sh                   apt + pip packages (fast when already there)
  2. scripts/check-generated-protos.sh         committed protobuf-c code matches Protos/
     scripts/check-format.sh                   the Swift sources are formatted (.swift-format)
  3. scripts/postgres.sh start                 a throw-away PostgreSQL on a free port
                                               (KINE_TEST_POSTGRES_URL is exported for the tests;
                                               stopped and removed at the end)
  4. swift build                               debug build, includes .build/debug/kine
  5. swift test                                every Swift test suite (Swift Testing)
  6. scripts/fuzz.sh                           each libFuzzer target for 20 s (address sanitizer)
  7. pytest Tests/e2e                          end-to-end suites against kine + a real etcd 3.5
A failed step 1 or 3 stops the run; the others go on after a failure. A summary with each step's
result and time, and the test counts, ends the output.

Takes no arguments.
  -h, --help  this help

Environment:
  KINE_E2E_TARGET=etcd    run the e2e suites against a second etcd 3.5 instead of kine
                          (validates the harness; the Go-kine fixture test is skipped);
                          etcd34: Debian's etcd 3.4 as the target
  KINE_BIN                kine binary for the e2e suites (default .build/debug/kine from step 4)
  KINE_TEST_SKIP_SWIFT=1  skip steps 4-6 (e2e then needs an existing binary via KINE_BIN)
  KINE_TEST_SKIP_PERF=1   skip the 60 s `etcdctl check perf` test (pytest -m "not slow")
  KINE_TEST_SKIP_FUZZ=1   skip step 6 (its first run builds the fuzzers, a few minutes)
  PYTEST_ARGS="..."       extra pytest arguments (e.g. "-k differential -x")
  PYTHON                  the python for pytest and the helpers (default python3)
The e2e suites read more (KINE_E2E_KEEP, KINE_E2E_ARGS, KINE_KUBE_BIN_DIR, KINE_HA_PG_BIN, ...;
docs/testing.md).

Exit status is non-zero if any step failed. Logs and JUnit XML: .build/test-logs/.

Examples:
  scripts/test.sh
  KINE_TEST_SKIP_SWIFT=1 KINE_BIN=$PWD/.build/release/kine PYTEST_ARGS="-k watch -x" scripts/test.sh
EOF
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
PY="${PYTHON:-python3}"
LOGDIR="$ROOT/.build/test-logs"
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/*.xml

STEPS=()
RESULTS=()
FAILED=0
T0=$(date +%s)

run_step() {
  local name="$1"; shift
  local t=$(date +%s)
  echo
  echo "==> $name"
  "$@"
  local rc=$?
  local secs=$(( $(date +%s) - t ))
  STEPS+=("$name")
  if [ $rc -eq 0 ]; then
    RESULTS+=("PASS  ${secs}s")
  else
    RESULTS+=("FAIL  ${secs}s (exit $rc)")
    FAILED=1
  fi
  return $rc
}

skip_step() {
  STEPS+=("$1"); RESULTS+=("SKIP  ($2)")
  echo; echo "==> $1: skipped ($2)"
}

PGDIR=""
cleanup() {
  if [ -n "$PGDIR" ]; then
    bash "$ROOT/scripts/postgres.sh" stop "$PGDIR/pg" >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_postgres() {
  PGDIR="$(mktemp -d /tmp/kine-test-pg.XXXXXX)"
  chmod 755 "$PGDIR"   # the server runs as the postgres user
  local port
  port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  local url
  url="$(bash "$ROOT/scripts/postgres.sh" start "$PGDIR/pg" "$port")" || return 1
  export KINE_TEST_POSTGRES_URL="$url"
  echo "KINE_TEST_POSTGRES_URL=$KINE_TEST_POSTGRES_URL"
}

summary() {
  local total=$(( $(date +%s) - T0 ))
  echo
  echo "================================ summary ================================"
  local i
  for i in "${!STEPS[@]}"; do
    printf '  %-44s %s\n' "${STEPS[$i]}" "${RESULTS[$i]}"
  done
  echo "  total time: ${total}s; logs and JUnit XML in .build/test-logs/"
  if [ $FAILED -eq 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
  # Test counts from every JUnit file written by swift test and pytest.
  "$PY" - "$LOGDIR" <<'PYEOF' || true
import glob, sys, xml.etree.ElementTree as ET
p = f = s = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    try:
        root = ET.parse(path).getroot()
    except Exception as e:
        print(f"  (unreadable {path}: {e})"); continue
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for ts in suites:
        n = int(ts.get("tests", 0)); bad = int(ts.get("failures", 0)) + int(ts.get("errors", 0))
        sk = int(ts.get("skipped", 0))
        p += n - bad - sk; f += bad; s += sk
print(f"tests: {p} passed, {f} failed, {s} skipped")
PYEOF
}

if ! run_step "install dependencies" bash "$ROOT/scripts/install-deps.sh"; then
  summary; exit 1
fi

if [ -x "$ROOT/scripts/check-generated-protos.sh" ] || [ -f "$ROOT/scripts/check-generated-protos.sh" ]; then
  run_step "generated protos up to date" bash "$ROOT/scripts/check-generated-protos.sh"
else
  skip_step "generated protos up to date" "no scripts/check-generated-protos.sh"
fi

run_step "swift-format" bash "$ROOT/scripts/check-format.sh"

if ! run_step "start PostgreSQL" start_postgres; then
  summary; exit 1
fi

BUILD_OK=1
if [ "${KINE_TEST_SKIP_SWIFT:-0}" = 1 ]; then
  skip_step "swift build" "KINE_TEST_SKIP_SWIFT=1"
  skip_step "swift test" "KINE_TEST_SKIP_SWIFT=1"
else
  run_step "swift build" swift build || BUILD_OK=0
  if [ $BUILD_OK = 1 ]; then
    run_step "swift test" swift test --xunit-output "$LOGDIR/swift.xml"
    if [ "${KINE_TEST_SKIP_FUZZ:-0}" = 1 ]; then
      skip_step "fuzz" "KINE_TEST_SKIP_FUZZ=1"
    else
      run_step "fuzz (20 s per target)" bash -c \
        'for t in deframer http2-server request-decoders gateway; do "$0/scripts/fuzz.sh" "$t" 20 || exit 1; done' "$ROOT"
    fi
  else
    STEPS+=("swift test"); RESULTS+=("FAIL  (not run: swift build failed)")
  fi
fi

E2E_TARGET="${KINE_E2E_TARGET:-kine}"
PYTEST_EXTRA=()
if [ "${KINE_TEST_SKIP_PERF:-0}" = 1 ]; then PYTEST_EXTRA+=(-m "not slow"); fi
if [ -n "${PYTEST_ARGS:-}" ]; then read -r -a more <<<"$PYTEST_ARGS"; PYTEST_EXTRA+=("${more[@]}"); fi
if [ "$E2E_TARGET" = kine ] && [ $BUILD_OK = 0 ]; then
  STEPS+=("e2e (pytest, target=kine)"); RESULTS+=("FAIL  (not run: swift build failed)")
else
  if [ "$E2E_TARGET" = kine ] && [ -z "${KINE_BIN:-}" ]; then export KINE_BIN="$ROOT/.build/debug/kine"; fi
  run_step "e2e (pytest, target=$E2E_TARGET)" "$PY" -m pytest "$ROOT/Tests/e2e" -o verbosity_test_cases=2 -rfEs \
    -p no:cacheprovider --junitxml="$LOGDIR/e2e.xml" "${PYTEST_EXTRA[@]}"
fi

summary
exit $FAILED
