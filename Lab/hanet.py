"""The two-node HA lab: two network namespaces on one machine, each with a PostgreSQL and a kine.

    root namespace (the tests, etcd clients over unix sockets in the node dirs)
        |                                     |
    kha<pid>a: 10.77.0.1/24  <-- veth -->  kha<pid>b: 10.77.0.2/24
      PostgreSQL 127.0.0.1,10.77.0.1:5432    PostgreSQL 127.0.0.1,10.77.0.2:5432
      kine  unix://<dir>/a/kine.sock         kine  unix://<dir>/b/kine.sock
            HA port 10.77.0.1:2380                 HA port 10.77.0.2:2380

Namespaces share the filesystem but not the network, so both PostgreSQLs use port 5432 (with a
unix socket directory per node) and the etcd clients in the root namespace reach each kine through
its unix socket. The only network traffic is on the veth pair and the namespaces' loopbacks.

Names carry the pid of the process that made the lab (kha<pid>a, /tmp/kha-<pid>/), so parallel
runs never collide; leftovers of runs whose pid is gone (a SIGKILLed pytest) are swept at start.
Everything the lab started is killed and removed on exit, pass or fail (context manager, atexit,
SIGTERM).

Used by the e2e suites (Tests/e2e: test_ha*.py, test_kubernetes_ha.py, hacheck.py), the benchmarks
(Benchmarks/Tools/ha_bench.py, kube_bench.py) and scripts/ha-demo.sh; see Lab/README.md. Also a
small CLI for scripts/ha-demo.sh (a lab that outlives the command):
    python3 Lab/hanet.py start DIR [--kine BIN] [--replication sync|async] [--name TAG]
    python3 Lab/hanet.py status DIR
    python3 Lab/hanet.py stop DIR
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from kinebin import kine_binary  # $KINE_BIN, else .build/debug|release/kine (same folder)

PG_BIN = Path(os.environ.get("KINE_HA_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
PG_PORT = 5432
HA_PORT = 2380
DB = "kubernetes"
REPLICATED_TABLES = ("kine", "kine_leases", "kine_alarms", "kine_auth", "kine_ha", "kine_ha_split_writes")
SUBNET = "10.77.0.0/24"
BOGUS_MAC = "02:00:00:00:00:01"  # a locally administered address no interface has
ADDRESSES = {"a": "10.77.0.1", "b": "10.77.0.2"}
TEST_PREFIX = "kha"           # kha<pid>a / kha<pid>b / kha<pid>va ... and /tmp/kha-<pid>/
STALE_NS = re.compile(r"^kha(\d+)[abw]$|^khaprobe(\d+)$")  # the lab's, and netns_available()'s
STALE_LINK = re.compile(r"^kha(\d+)[vwx][ab]$")
# The optional witness (HALab(witness=True)): a third namespace kha<pid>w with its own veth pair
# to each node (kha<pid>wa/xa, kha<pid>wb/xb) and the witness address on its loopback. It does
# not forward, so it never joins the two nodes; nothing listens there: a refused connect is an
# answer (kine counts it as reachable), a downed link is not.
WITNESS_ADDR = "10.77.9.9"
WITNESS = f"{WITNESS_ADDR}:7"
WITNESS_LINKS = {"a": ("10.77.1.1", "10.77.1.254"), "b": ("10.77.2.2", "10.77.2.254")}
STALE_DIR = re.compile(r"^kha-(\d+)$")

# The HA timing every test uses (seconds-scale, so a failover test takes seconds, not minutes).
DEFAULT_HA_OPTIONS = {
    "--ha-liveness": "3s",
    "--ha-probe-interval": "500ms",
    "--ha-probe-timeout": "400ms",
    "--ha-hold-down": "5s",
    "--ha-startup-grace": "3s",
}
LIVENESS = 3.0
HOLD_DOWN = 5.0
STARTUP_GRACE = 3.0

# postgresql.conf for HA (reference/ha.md 2.2); timeouts shorter than production so a cut link is
# noticed within the test's liveness scale.
PG_SETTINGS = {
    "port": str(PG_PORT),
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "max_worker_processes": "16",
    "wal_sender_timeout": "'5s'",
    "wal_receiver_timeout": "'5s'",
    "wal_retrieve_retry_interval": "'1s'",
    "max_slot_wal_keep_size": "'1GB'",
    "track_commit_timestamp": "on",
    "fsync": "on",
    "shared_buffers": "'64MB'",  # two servers on a small machine
}

PG_HBA = f"""\
# Written by hanet.py: a throw-away lab, trust everywhere the lab reaches.
local   all          all                    trust
host    all          all    127.0.0.1/32    trust
host    all          all    {SUBNET}    trust
local   replication  all                    trust
host    replication  all    127.0.0.1/32    trust
host    replication  all    {SUBNET}    trust
"""


# --------------------------------------------------------------------------------------------
# Small process helpers


def sh(cmd: list[str], check: bool = True, timeout: float = 60, input: str | None = None,
       ) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {shlex.join(cmd)}\n{r.stdout}{r.stderr}")
    return r


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PostgreSQL refuses to start while the
    pid in postmaster.pid exists, zombie or not, so callers wait for the pid to vanish)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pid_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.2):
    """Polls until predicate() returns something truthy and returns it; None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def kill_group(pid: int, sig: int) -> None:
    """Signal the process group led by pid (kine and PostgreSQL run as group leaders), else pid."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def lab_processes(root: Path | str) -> list[int]:
    """The PostgreSQL servers (data dir under root) and kine processes (socket under root) of
    a lab, found by command line: they outlive their namespace if it was deleted under them.
    Never this process or its parents (e.g. `ha-demo.sh stop DIR`)."""
    root = str(root).rstrip("/") + "/"
    skip = _ancestors()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        cmd = cmdline(int(d))
        if f"unix://{root}".encode() in cmd or (cmd.startswith(b"/") and b"postgres" in cmd.split(b"\0")[0]
                                                 and root.encode() in cmd):
            out.append(int(d))
    return out


def netns_list() -> list[str]:
    r = sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    r = sh(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def kill_and_wait(pids: Iterable[int], timeout: float = 10) -> None:
    pids = list(pids)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(pid_exists(p) for p in pids), timeout, 0.05)


def netns_available() -> str | None:
    """None when this machine can run the lab, else why not."""
    if os.geteuid() != 0:
        return "needs root (ip netns, runuser)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) not installed"
    probe = f"khaprobe{os.getpid()}"
    r = sh(["ip", "netns", "add", probe], check=False)
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    sh(["ip", "netns", "del", probe], check=False)
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN} (set KINE_HA_PG_BIN)"
    return None


def ha_unavailable() -> str | None:
    """None when this machine can run the lab with a kine built with HA, else why not (the HA
    suites skip with it)."""
    why = netns_available()
    if why:
        return why
    try:
        kine = kine_binary()
    except RuntimeError as e:
        return str(e)
    # The HA flags may sit on the top-level help or on the default `serve` subcommand's.
    texts = [subprocess.run([kine, *args, "--help"], capture_output=True, text=True, timeout=30)
             for args in ([], ["serve"])]
    if not any("--ha-peer" in r.stdout + r.stderr for r in texts):
        return f"{kine} has no --ha-peer flag (HA not built)"
    return None


def sweep_stale(prefix: str = TEST_PREFIX) -> list[str]:
    """Removes what earlier test runs left behind (namespaces, veths, scratch dirs, processes)
    when the run that made it is gone. The current pid's names count as stale too: they can only
    be from an earlier boot whose run had the same pid, since this run has not made them yet."""
    removed = []

    def dead(pid: int) -> bool:
        return pid == os.getpid() or not pid_alive(pid)  # a zombie run is a dead run

    for ns in netns_list():
        m = STALE_NS.match(ns)
        if m and dead(int(m.group(1) or m.group(2))):
            kill_and_wait(netns_pids(ns))
            sh(["ip", "netns", "del", ns], check=False)
            removed.append(f"netns {ns}")
    links = sh(["ip", "-o", "link", "show"], check=False).stdout
    for name in re.findall(r"^\d+:\s+([^:@\s]+)", links, re.M):
        m = STALE_LINK.match(name)
        if m and dead(int(m.group(1))):
            sh(["ip", "link", "del", name], check=False)
            removed.append(f"link {name}")
    for d in Path("/tmp").glob(f"{prefix}-*"):
        m = STALE_DIR.match(d.name)
        if m and dead(int(m.group(1))):
            # Processes of that run whose namespace is already gone still name the dir.
            kill_and_wait(lab_processes(d))
            shutil.rmtree(d, ignore_errors=True)
            removed.append(f"dir {d}")
    return removed


# --------------------------------------------------------------------------------------------
# The lab


@dataclass
class Node:
    name: str          # "a" or "b"
    ns: str            # network namespace
    veth: str          # this node's end of the veth pair
    addr: str          # 10.77.0.1 / 10.77.0.2
    dir: Path          # per-node scratch dir
    peer_name: str = ""
    kine_proc: subprocess.Popen | None = None
    kine_pid: int | None = None        # also set for a lab re-loaded by the CLI (no Popen then)
    kine_args: list[str] = field(default_factory=list)

    @property
    def pgdata(self) -> Path:
        return self.dir / "pgdata"

    @property
    def pgsock(self) -> Path:
        return self.dir / "pgsock"

    @property
    def pglog(self) -> Path:
        return self.dir / "postgres.log"

    @property
    def sock(self) -> Path:
        return self.dir / "kine.sock"

    @property
    def endpoint(self) -> str:
        """gRPC target for etcdgrpc.Client and etcdctl --endpoints."""
        return f"unix://{self.sock}"

    @property
    def kine_log(self) -> Path:
        return self.dir / "kine.log"

    @property
    def ha_address(self) -> str:
        return f"{self.addr}:{HA_PORT}"


_LIVE_LABS: list["HALab"] = []


def _cleanup_live_labs() -> None:
    for lab in list(_LIVE_LABS):
        lab.cleanup()


def _on_sigterm(signum, frame):  # noqa: ARG001
    # Unwind like Ctrl-C, so context managers and pytest fixtures remove the lab.
    raise KeyboardInterrupt(f"signal {signum}")


atexit.register(_cleanup_live_labs)


class HALab:
    """Two namespaces, a veth pair, a PostgreSQL and (on demand) a kine in each.

    `with HALab() as lab:` for tests; `persistent=True` (CLI) keeps everything after the Python
    process exits, with its layout in <root>/lab.json for `stop`."""

    def __init__(self, root: Path | str | None = None, tag: str | None = None,
                 kine_bin: str | None = None, persistent: bool = False, witness: bool = False):
        self.tag = tag or str(os.getpid())
        self.witness = witness
        self.witness_ns = f"{TEST_PREFIX}{self.tag}w"
        self.root = Path(root) if root else Path(f"/tmp/{TEST_PREFIX}-{self.tag}")
        self.persistent = persistent
        self._kine_bin = kine_bin
        self.nodes = {
            n: Node(name=n, ns=f"{TEST_PREFIX}{self.tag}{n}", veth=f"{TEST_PREFIX}{self.tag}v{n}",
                    addr=ADDRESSES[n], dir=self.root / n, peer_name="b" if n == "a" else "a")
            for n in ("a", "b")
        }
        for n in self.nodes.values():
            assert len(n.veth) <= 15, f"interface name too long: {n.veth}"
        self.pg_overrides: dict[str, dict[str, str]] = {"a": {}, "b": {}}
        # Extra `kine ha status` arguments every status call uses (a client certificate when the
        # HA port runs mutual TLS).
        self.status_args: list[str] = []
        self._up = False

    # ---- lifecycle

    def __enter__(self) -> "HALab":
        self.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def node(self, n: "str | Node") -> Node:
        return n if isinstance(n, Node) else self.nodes[n]

    def peer(self, n: "str | Node") -> Node:
        return self.nodes[self.node(n).peer_name]

    @property
    def kine_bin(self) -> str:
        if self._kine_bin is None:
            self._kine_bin = kine_binary()
        return self._kine_bin

    def setup(self) -> None:
        why = netns_available()
        if why:
            raise RuntimeError(f"the HA lab cannot run here: {why}")
        if any(lab.tag == self.tag for lab in _LIVE_LABS):
            raise RuntimeError(f"a lab tagged {self.tag} is already up in this process (one at a time)")
        if not self.persistent:  # a persistent (CLI) lab outlives this process
            sweep_stale()
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
            _LIVE_LABS.append(self)  # for atexit
        self._up = True
        try:
            self._make_dirs()
            self._make_network()
        except BaseException:
            self.cleanup()
            raise

    def _make_dirs(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        os.chmod(self.root, 0o755)
        for n in self.nodes.values():
            n.dir.mkdir()
            # PostgreSQL runs as postgres and writes its data, socket and log here; kine (root)
            # writes its socket and log here too.
            shutil.chown(n.dir, PG_USER, PG_USER)
            os.chmod(n.dir, 0o755)

    def _make_network(self) -> None:
        a, b = self.nodes["a"], self.nodes["b"]
        for n in (a, b):
            sh(["ip", "netns", "add", n.ns])
        sh(["ip", "link", "add", a.veth, "type", "veth", "peer", "name", b.veth])
        for n in (a, b):
            sh(["ip", "link", "set", n.veth, "netns", n.ns])
            sh(["ip", "-n", n.ns, "addr", "add", f"{n.addr}/24", "dev", n.veth])
            sh(["ip", "-n", n.ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", n.ns, "link", "set", n.veth, "up"])
        if self.witness:
            w = self.witness_ns
            sh(["ip", "netns", "add", w])
            sh(["ip", "-n", w, "link", "set", "lo", "up"])
            sh(["ip", "-n", w, "addr", "add", f"{WITNESS_ADDR}/32", "dev", "lo"])
            for n in (a, b):
                mine, theirs = self.witness_veth(n), f"{TEST_PREFIX}{self.tag}x{n.name}"
                local, remote = WITNESS_LINKS[n.name]
                sh(["ip", "link", "add", mine, "type", "veth", "peer", "name", theirs])
                sh(["ip", "link", "set", mine, "netns", n.ns])
                sh(["ip", "link", "set", theirs, "netns", w])
                sh(["ip", "-n", n.ns, "addr", "add", f"{local}/24", "dev", mine])
                sh(["ip", "-n", w, "addr", "add", f"{remote}/24", "dev", theirs])
                sh(["ip", "-n", n.ns, "link", "set", mine, "up"])
                sh(["ip", "-n", w, "link", "set", theirs, "up"])
                sh(["ip", "-n", n.ns, "route", "add", f"{WITNESS_ADDR}/32", "via", remote])

    def witness_veth(self, n: "str | Node") -> str:
        return f"{TEST_PREFIX}{self.tag}w{self.node(n).name}"

    def cleanup(self) -> None:
        """Kill everything the lab started, delete the namespaces and the scratch dir. Safe to
        call twice, and after a partial setup."""
        if not self._up:
            return
        self._up = False
        if self in _LIVE_LABS:
            _LIVE_LABS.remove(self)
        for n in self.nodes.values():
            self._kill_kine_now(n)
        pids = []
        for n in self.nodes.values():
            pids += netns_pids(n.ns)
            pid = self.postgres_pid(n)
            if pid:
                pids.append(pid)
        pids += lab_processes(self.root)
        kill_and_wait(set(pids) - _ancestors())
        for n in self.nodes.values():
            sh(["ip", "netns", "del", n.ns], check=False)
        if self.witness:
            sh(["ip", "netns", "del", self.witness_ns], check=False)
        # A veth still in the root namespace (setup interrupted before the move).
        for n in self.nodes.values():
            for link in (n.veth, self.witness_veth(n), f"{TEST_PREFIX}{self.tag}x{n.name}"):
                if sh(["ip", "link", "show", link], check=False).returncode == 0:
                    sh(["ip", "link", "del", link], check=False)
        if os.environ.get("KINE_E2E_KEEP") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this lab still exists (empty after cleanup)."""
        left = [f"netns {ns}" for ns in netns_list() if ns in {n.ns for n in self.nodes.values()} | {self.witness_ns}]
        left += [f"pid {p}" for p in lab_processes(self.root) if pid_alive(p)]
        if self.root.exists():
            left.append(f"dir {self.root}")
        return left

    def nsexec(self, n: "str | Node") -> list[str]:
        return ["ip", "netns", "exec", self.node(n).ns]

    # ---- PostgreSQL

    def pg_settings(self, n: "str | Node") -> dict[str, str]:
        node = self.node(n)
        s = dict(PG_SETTINGS)
        s["listen_addresses"] = f"'127.0.0.1,{node.addr}'"
        s["unix_socket_directories"] = f"'{node.pgsock}'"
        s.update(self.pg_overrides[node.name])
        return s

    def init_postgres(self, n: "str | Node") -> None:
        node = self.node(n)
        if (node.pgdata / "PG_VERSION").exists():
            return
        for d in (node.pgdata, node.pgsock):
            d.mkdir(exist_ok=True)
            shutil.chown(d, PG_USER, PG_USER)
        os.chmod(node.pgdata, 0o700)
        # --no-sync: only initdb's own final flush; the server itself runs with fsync=on.
        sh(["runuser", "-u", PG_USER, "--", str(PG_BIN / "initdb"), "-D", str(node.pgdata), "-U", PG_USER,
            "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"], timeout=120)
        with open(node.pgdata / "postgresql.conf", "a") as f:
            f.write("\ninclude_if_exists = 'ha.conf'\n")
        self._write_pg_files(node)

    def _write_pg_files(self, node: Node) -> None:
        conf = "".join(f"{k} = {v}\n" for k, v in self.pg_settings(node).items())
        for name, text in (("ha.conf", "# Written by hanet.py on every start.\n" + conf),
                           ("pg_hba.conf", PG_HBA)):
            p = node.pgdata / name
            p.write_text(text)
            shutil.chown(p, PG_USER, PG_USER)

    def set_postgres_settings(self, n: "str | Node", **settings: str) -> None:
        """Overrides for the node's postgresql settings (values as in postgresql.conf, quoted
        where needed); they apply at the next start."""
        self.pg_overrides[self.node(n).name].update(settings)

    def start_postgres(self, n: "str | Node", create_db: bool = True) -> None:
        node = self.node(n)
        self.init_postgres(node)
        self._write_pg_files(node)
        self._wait_old_postmaster_gone(node)
        if not node.pglog.exists():
            node.pglog.touch()
            shutil.chown(node.pglog, PG_USER, PG_USER)
        r = sh(self.nsexec(node) + ["runuser", "-u", PG_USER, "--", str(PG_BIN / "pg_ctl"), "-D", str(node.pgdata),
                                    "-l", str(node.pglog), "-w", "-t", "60", "start"], check=False, timeout=90)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start on {node.name} failed:\n{r.stdout}{r.stderr}\n"
                               f"--- {node.pglog} ---\n{tail(node.pglog)}")
        if create_db and not self.psql(node, f"SELECT 1 FROM pg_database WHERE datname = '{DB}'", db="postgres"):
            self.psql(node, f"CREATE DATABASE {DB}", db="postgres")

    def _wait_old_postmaster_gone(self, node: Node) -> None:
        # After kill -9, PostgreSQL refuses to start while the old pid (even as a zombie not yet
        # reaped by init) exists, so wait for it.
        pid = self.postgres_pid(node)
        if pid and not wait_for(lambda: not pid_exists(pid), 15, 0.05):
            raise RuntimeError(f"old postmaster {pid} of {node.name} still exists")

    def postgres_pid(self, n: "str | Node") -> int | None:
        try:
            first = (self.node(n).pgdata / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def postgres_running(self, n: "str | Node") -> bool:
        pid = self.postgres_pid(n)
        return bool(pid and pid_alive(pid))

    def stop_postgres(self, n: "str | Node", mode: str = "fast") -> None:
        node = self.node(n)
        if not self.postgres_running(node):
            return
        sh(self.nsexec(node) + ["runuser", "-u", PG_USER, "--", str(PG_BIN / "pg_ctl"), "-D", str(node.pgdata),
                                "-m", mode, "-w", "-t", "60", "stop"], check=False, timeout=90)

    def kill_postgres(self, n: "str | Node") -> None:
        """kill -9 of the postmaster and its whole process group (the backends too, as in a
        power loss), returning once they are gone."""
        node = self.node(n)
        pid = self.postgres_pid(node)
        if not pid or not pid_exists(pid):
            return
        group = netns_pids(node.ns)
        kill_group(pid, signal.SIGKILL)
        kill_and_wait([p for p in group if self._is_postgres(p)] + [pid])

    @staticmethod
    def _is_postgres(pid: int) -> bool:
        try:
            return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("postgres")
        except OSError:
            return False

    def restart_postgres(self, n: "str | Node") -> None:
        self.stop_postgres(n)
        self.start_postgres(n)

    def psql(self, n: "str | Node", sql: str, db: str = DB, check: bool = True, timeout: float = 60,
             host: str | None = None) -> str:
        """Runs sql (several statements allowed; each its own transaction, so CREATE
        SUBSCRIPTION works) with psql inside the node's namespace, over its unix socket unless
        host is given. Returns the unaligned, tuples-only output."""
        node = self.node(n)
        conn = f"host={host or node.pgsock} port={PG_PORT} dbname={db} user={PG_USER} connect_timeout=3"
        cmd = self.nsexec(node) + [str(PG_BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conn, "-f", "-"]
        r = sh(cmd, check=False, timeout=timeout, input=sql)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql on {node.name} failed ({r.returncode}): {sql[:200]}\n{r.stderr}")
        return r.stdout.strip()

    def table_state(self, n: "str | Node", tables: Iterable[str] = REPLICATED_TABLES,
                    ) -> dict[str, tuple[int, str]] | None:
        """Count and md5 of every row (its whole text form, so every column, in id order) of each
        replicated table that exists, for R6 comparisons; None if the database cannot answer."""
        node = self.node(n)
        names = ",".join(f"'{t}'" for t in tables)
        try:
            present = self.psql(node, f"SELECT string_agg(t, ',') FROM unnest(ARRAY[{names}]) t "
                                      "WHERE to_regclass(t) IS NOT NULL", timeout=20)
            tables = [t for t in present.split(",") if t]
            if not tables:
                return None
            q = "\nUNION ALL\n".join(
                f"SELECT '{t}', count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM {t} r"
                if t in ("kine_ha", "kine_alarms", "kine_auth") else
                f"SELECT '{t}', count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r.id), '')) FROM {t} r"
                for t in tables)
            out = self.psql(node, q, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            return None
        state = {}
        for line in out.splitlines():
            t, count, md5 = line.split("|")
            state[t] = (int(count), md5)
        return state

    # ---- kine

    def kine_command(self, n: "str | Node", replication: str = "sync", priority: str | None = None,
                     options: dict[str, str] | None = None, extra_args: Iterable[str] = (), ha: bool = True,
                     endpoint: str | None = None) -> list[str]:
        """The HA command line of the spec; ha=False leaves out the --ha-* flags (a plain kine,
        e.g. on the peer's database via endpoint, to exercise the lab and checker without HA)."""
        node, peer = self.node(n), self.peer(n)
        cmd = [self.kine_bin, "--listen-address", node.endpoint,
               "--endpoint", endpoint or f"postgres://{PG_USER}@127.0.0.1:{PG_PORT}/{DB}"]
        if ha:
            opts = {
                "--ha-node-name": node.name,
                "--ha-peer": peer.ha_address,
                "--ha-listen-address": node.ha_address,
                "--ha-peer-endpoint": f"postgres://{PG_USER}@{peer.addr}:{PG_PORT}/{DB}",
                "--ha-replication": replication,
                "--ha-priority": priority or ("primary" if node.name == "a" else "secondary"),
                **DEFAULT_HA_OPTIONS,
                **(options or {}),
            }
            for k, v in opts.items():
                cmd += [k, v]
        return cmd + list(extra_args)

    def start_kine(self, n: "str | Node", wait: str | None = "ha", timeout: float = 30,
                   env: dict[str, str] | None = None, **kw) -> Node:
        """Starts kine in the node's namespace (kw: see kine_command), with `env` added to its
        environment. wait: "ha" (until `kine ha status` answers), "etcd" (until an etcd Range
        answers), or None."""
        node = self.node(n)
        if node.kine_pid and pid_alive(node.kine_pid):
            raise RuntimeError(f"kine {node.name} is already running (pid {node.kine_pid})")
        node.kine_args = self.kine_command(node, **kw)
        if node.sock.exists():
            node.sock.unlink()  # so "answers" can only mean the new process
        log = open(node.kine_log, "ab")
        log.write(f"\n==== {time.strftime('%H:%M:%S')} $ {shlex.join(node.kine_args)}\n".encode())
        log.flush()
        # `ip netns exec` execs the command, so the pid is kine's; its own session so signals to
        # the group reach only kine.
        node.kine_proc = subprocess.Popen(self.nsexec(node) + node.kine_args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env={**os.environ, **(env or {})})
        log.close()
        node.kine_pid = node.kine_proc.pid
        if wait:
            self.wait_kine(node, wait, timeout)
        return node

    def wait_kine(self, n: "str | Node", how: str = "ha", timeout: float = 30) -> None:
        node = self.node(n)
        probe = (lambda: self.ha_status(node) is not None) if how == "ha" else (lambda: self.etcd_answers(node))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.kine_running(node):
                raise RuntimeError(f"kine {node.name} exited ({self.kine_exit_code(node)}) before it answered\n"
                                   f"{self.kine_log_tail(node)}")
            if probe():
                return
            time.sleep(0.2)
        raise RuntimeError(f"kine {node.name} did not answer ({how}) within {timeout}s\n{self.kine_log_tail(node)}")

    def etcd_answers(self, n: "str | Node") -> bool:
        from etcdgrpc import Client  # grpcio; only the tests need it, not the CLI
        node = self.node(n)
        c = Client(node.endpoint, timeout=2)
        try:
            _, err = c.call(c.kv.Range, c.pb.RangeRequest(key=b"/ha-ready-probe"))
            return err is None
        finally:
            c.close()

    def kine_running(self, n: "str | Node") -> bool:
        return self._kine_pid_is_ours(self.node(n))

    def kine_exit_code(self, n: "str | Node") -> int | None:
        node = self.node(n)
        return node.kine_proc.poll() if node.kine_proc is not None else None

    def signal_kine(self, n: "str | Node", sig: int) -> None:
        node = self.node(n)
        if self._kine_pid_is_ours(node):
            kill_group(node.kine_pid, sig)

    def _kine_pid_is_ours(self, node: Node) -> bool:
        """Never signal a pid that was reused after our kine exited."""
        if not node.kine_pid:
            return False
        if node.kine_proc is not None:
            return node.kine_proc.poll() is None
        return pid_alive(node.kine_pid) and f"unix://{node.sock}".encode() in cmdline(node.kine_pid)

    def kill_kine(self, n: "str | Node") -> None:
        """kill -9, returning once the process is gone."""
        self._kill_kine_now(self.node(n))

    def _kill_kine_now(self, node: Node) -> None:
        if not self._kine_pid_is_ours(node):
            return
        kill_group(node.kine_pid, signal.SIGKILL)
        self._reap(node, 10)

    def _reap(self, node: Node, timeout: float) -> bool:
        if node.kine_proc is not None:
            try:
                node.kine_proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
        elif not wait_for(lambda: not pid_alive(node.kine_pid), timeout, 0.05):
            return False
        return True

    def pause_kine(self, n: "str | Node") -> None:
        self.signal_kine(n, signal.SIGSTOP)

    def resume_kine(self, n: "str | Node") -> None:
        self.signal_kine(n, signal.SIGCONT)

    def stop_kine(self, n: "str | Node", timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit code when known."""
        node = self.node(n)
        if not self.kine_running(node):
            return self.kine_exit_code(node)
        self.signal_kine(node, signal.SIGCONT)  # a stopped process would not act on SIGTERM
        self.signal_kine(node, signal.SIGTERM)
        if not self._reap(node, timeout):
            self._kill_kine_now(node)
        return self.kine_exit_code(node)

    def restart_kine(self, n: "str | Node", **kw) -> Node:
        self.stop_kine(n)
        return self.start_kine(n, **kw)

    def kine_log_tail(self, n: "str | Node", lines: int = 40) -> str:
        node = self.node(n)
        return f"--- kine {node.name} log ({node.kine_log}) ---\n{tail(node.kine_log, lines)}"

    def kine_log_text(self, n: "str | Node") -> str:
        try:
            return self.node(n).kine_log.read_text(errors="replace")
        except OSError:
            return ""

    # ---- HA status

    def ha_status_tls(self, n: "str | Node", key_crt: tuple[str, str], ca: tuple[str, str], timeout: float = 5) -> dict | None:
        """ha_status over a mutual-TLS HA port, with a client certificate (key, cert) from ca."""
        return self.ha_status(n, timeout, ["--ha-cert-file", key_crt[1], "--ha-key-file", key_crt[0], "--ha-trusted-ca-file", ca[1]])

    def ha_status(self, n: "str | Node", timeout: float = 3, extra: Iterable[str] = ()) -> dict | None:
        """`kine ha status --json` run inside the node's namespace; None if it does not answer."""
        node = self.node(n)
        cmd = self.nsexec(node) + [self.kine_bin, "ha", "status", "--json", "--address", node.ha_address,
                                   *(extra or self.status_args)]
        try:
            r = sh(cmd, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            return None

    def split_writes(self, n: "str | Node") -> list[dict]:
        """`kine ha split-writes export` against the node's PostgreSQL (JSON Lines parsed)."""
        node = self.node(n)
        endpoint = f"postgres://{PG_USER}@/{DB}?host={node.pgsock}"
        r = sh([self.kine_bin, "ha", "split-writes", "export", "--json", "--endpoint", endpoint], timeout=30)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def metrics(self, n: "str | Node") -> dict[str, float]:
        """The node's /metrics (HTTP/1.1 on its unix socket), as {"name{labels}": value}."""
        import http.client
        import socket

        node = self.node(n)

        class UnixConnection(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(5)
                self.sock.connect(str(node.sock))

        conn = UnixConnection("localhost")
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def ha_command(self, n: "str | Node", *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """`kine ha ARGS --address <node's HA port>` inside the node's namespace."""
        node = self.node(n)
        return sh(self.nsexec(node) + [self.kine_bin, "ha", *args, "--address", node.ha_address], check=check, timeout=timeout)

    def wait_role(self, n: "str | Node", roles: "str | Iterable[str]", timeout: float = 30) -> dict:
        """Waits until the node reports one of roles; returns that status, or fails the test with
        both nodes' last status and log tails."""
        roles = {roles} if isinstance(roles, str) else set(roles)
        node = self.node(n)
        st = wait_for(lambda: (s := self.ha_status(node)) and s.get("role") in roles and s, timeout, 0.25)
        if not st:
            raise AssertionError(f"node {node.name} did not reach role {sorted(roles)} within {timeout}s\n"
                                 + self.diagnostics())
        return st

    def diagnostics(self) -> str:
        """Both nodes' status and log tails, for failure messages."""
        out = []
        for node in self.nodes.values():
            out.append(f"status {node.name}: {self.ha_status(node, timeout=2)}")
        for node in self.nodes.values():
            out.append(self.kine_log_tail(node, 30))
            out.append(f"--- postgres {node.name} log ---\n{tail(node.pglog, 15)}")
        return "\n".join(out)

    # ---- faults (all inside the namespaces; the root namespace is never touched)

    def link_down(self, n: "str | Node") -> None:
        node = self.node(n)
        sh(["ip", "-n", node.ns, "link", "set", node.veth, "down"])

    def link_up(self, n: "str | Node") -> None:
        node = self.node(n)
        sh(["ip", "-n", node.ns, "link", "set", node.veth, "up"])

    def blackhole(self, n: "str | Node") -> None:
        """A blackhole route in n for its peer's address. What n sends to the peer vanishes, so
        the peer's connections to n time out silently; but n's own new connects fail at once
        with EINVAL (the kernel refuses local sends into a blackhole route) and only n's
        established connections go silent. For silence on both ends of n's traffic use drop()."""
        sh(["ip", "-n", self.node(n).ns, "route", "add", "blackhole", f"{self.peer(n).addr}/32"])

    def unblackhole(self, n: "str | Node") -> None:
        sh(["ip", "-n", self.node(n).ns, "route", "del", "blackhole", f"{self.peer(n).addr}/32"], check=False)

    def drop(self, n: "str | Node") -> None:
        """Silently drop everything n sends to its peer, its own connects included: a permanent
        neighbour entry sends those frames to a MAC address nobody has (no iptables/nft here)."""
        node = self.node(n)
        sh(["ip", "-n", node.ns, "neigh", "replace", self.peer(n).addr, "lladdr", BOGUS_MAC,
            "dev", node.veth, "nud", "permanent"])

    def undrop(self, n: "str | Node") -> None:
        node = self.node(n)
        sh(["ip", "-n", node.ns, "neigh", "del", self.peer(n).addr, "dev", node.veth], check=False)

    def partition(self) -> None:
        """Silent symmetric partition: drops in both directions."""
        for n in self.nodes:
            self.drop(n)

    def witness_down(self, n: "str | Node") -> None:
        """Cut n from the witness (its own link to the witness namespace)."""
        sh(["ip", "-n", self.node(n).ns, "link", "set", self.witness_veth(n), "down"])

    def witness_up(self, n: "str | Node") -> None:
        node = self.node(n)
        sh(["ip", "-n", node.ns, "link", "set", self.witness_veth(n), "up"])
        # The route through the link went with it.
        sh(["ip", "-n", node.ns, "route", "replace", f"{WITNESS_ADDR}/32", "via", WITNESS_LINKS[node.name][1]], check=False)

    def heal(self) -> None:
        """Undo every fault of this section."""
        for n in self.nodes:
            self.undrop(n)
            self.unblackhole(n)
            self.link_up(n)
            if self.witness:
                self.witness_up(n)

    # ---- state file for the CLI (a lab that outlives the process that made it)

    def save(self) -> None:
        state = {"tag": self.tag, "root": str(self.root), "kine_bin": self._kine_bin,
                 "nodes": {n.name: {"ns": n.ns, "veth": n.veth, "kine_pid": n.kine_pid} for n in self.nodes.values()}}
        (self.root / "lab.json").write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, root: Path | str) -> "HALab":
        state = json.loads((Path(root) / "lab.json").read_text())
        lab = cls(root=state["root"], tag=state["tag"], kine_bin=state.get("kine_bin"), persistent=True)
        for name, s in state["nodes"].items():
            lab.nodes[name].kine_pid = s.get("kine_pid")
        lab._up = True
        return lab


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------
# CLI (scripts/ha-demo.sh)


def _cli_start(args) -> int:
    root = Path(args.dir).resolve()
    if (root / "lab.json").exists():
        print(f"a lab already runs in {root}; `stop` it first", file=sys.stderr)
        return 1
    lab = HALab(root=root, tag=args.name, kine_bin=args.kine, persistent=True)
    lab.setup()
    try:
        lab.save()
        for n in ("a", "b"):
            lab.start_postgres(n)
        for n in ("a", "b"):
            lab.start_kine(n, replication=args.replication, wait="ha", timeout=60)
            lab.save()
        lab.wait_role("a", {"leader", "leader-alone"}, 60)
        lab.wait_role("b", {"follower", "follower-syncing"}, 60)
    except BaseException:
        print(f"start failed; logs under {root}:", file=sys.stderr)
        print(lab.diagnostics(), file=sys.stderr)
        lab.cleanup()
        raise
    _print_usage(lab)
    return 0


def _print_usage(lab: HALab) -> None:
    # etcdctl gets a relative socket path: with unix:///abs/path Go gRPC sends the path as the
    # HTTP/2 :authority, which kine's HTTP/2 layer rejects.
    for node in lab.nodes.values():
        print(f"node {node.name} ({'primary' if node.name == 'a' else 'secondary'}): namespace {node.ns}, "
              f"address {node.addr}, dir {node.dir}")
        print(f"  etcd:      (cd {node.dir} && etcdctl --endpoints=unix://kine.sock put /hello world)")
        print(f"             gRPC clients: {node.endpoint}")
        print(f"  HA status: ip netns exec {node.ns} {lab.kine_bin} ha status --json --address {node.ha_address}")
        print(f"  psql:      psql 'host={node.pgsock} dbname={DB} user={PG_USER}'")
        print(f"  logs:      {node.kine_log} {node.pglog}")
    print("faults:      ip netns exec <ns> kill -9 <pid>; "
          f"ip -n {lab.nodes['a'].ns} link set {lab.nodes['a'].veth} down|up")


def _cli_status(args) -> int:
    if not (Path(args.dir) / "lab.json").exists():
        print(f"no lab in {args.dir}", file=sys.stderr)
        return 3
    lab = HALab.load(args.dir)
    for n in ("a", "b"):
        print(json.dumps({"node": n, "kine_running": lab.kine_running(n), "status": lab.ha_status(n)}))
    return 0


def _cli_stop(args) -> int:
    root = Path(args.dir).resolve()
    if not (root / "lab.json").exists():
        print(f"no lab in {root}", file=sys.stderr)
        return 0
    lab = HALab.load(root)
    lab.cleanup()
    left = lab.leftovers()
    if left:
        print(f"left over: {left}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Two-node kine HA lab in network namespaces.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="make the namespaces, start PostgreSQL and kine on both nodes")
    s.add_argument("dir")
    s.add_argument("--kine", help="kine binary (default: $KINE_BIN, .build/debug/kine, .build/release/kine)")
    s.add_argument("--replication", choices=("sync", "async"), default="sync")
    s.add_argument("--name", default="demo", help="namespace tag: kha<NAME>a / kha<NAME>b (<= 9 chars)")
    s.set_defaults(fn=_cli_start)
    for name, fn in (("status", _cli_status), ("stop", _cli_stop)):
        q = sub.add_parser(name)
        q.add_argument("dir")
        q.set_defaults(fn=fn)
    args = p.parse_args(argv)
    # A tag starting with a letter never looks like a test run's pid, so no sweep removes it.
    if args.cmd == "start" and not re.fullmatch(r"[a-z][a-z0-9]{0,8}", args.name):
        p.error("--name: 1-9 lower-case letters/digits, starting with a letter")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
