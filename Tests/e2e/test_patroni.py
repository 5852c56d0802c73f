"""Patroni (a real etcd v3 client with a user name and password) against etcd 3.5.1 and the target.

Each server gets auth the way docs/auth.md turns it on: a `root` user, a role `patroni` with
readwrite on the prefix `/service/`, a user `patroni` with that role, `auth enable`. Then one
Patroni per server (etcd3 DCS over the JSON gateway, `username`/`password`), each with its own
PostgreSQL data directory (Patroni runs initdb itself), bootstraps a one-member cluster:

  * both take the leader key (`/service/<scope>/leader` holds the member name, the REST API's
    `GET /leader` answers 200) and the same key names appear under `/service/<scope>/` on both;
  * with a wrong password Patroni stops at its first login (it logs the authentication failure
    and exits) and no leader key appears, on both servers.

Patroni and PostgreSQL run as the `postgres` user (PostgreSQL refuses root), so the module needs
root, a `postgres` user and PostgreSQL's server binaries ($KINE_PATRONI_PG_BIN, else the newest
/usr/lib/postgresql/*/bin). Patroni itself comes from Tests/e2e/requirements.txt
(`patroni`, `python-etcd` for its etcd3 DCS, `psycopg2-binary`; scripts/install-deps.sh installs
them). When the python running pytest cannot be run by `postgres` (a pyenv under /root), Patroni
runs on the system python of the same version with copies of its packages in a temp directory.

KINE_E2E_KEEP=1 keeps the Patroni directories (logs, data) for a look afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

try:
    import patroni  # noqa: F401
    import etcd  # noqa: F401  (python-etcd: Patroni's etcd3 DCS imports its exceptions)
except ImportError as e:  # pragma: no cover
    pytest.skip(f"Patroni is not installed ({e}); scripts/install-deps.sh installs it from "
                "Tests/e2e/requirements.txt (pip install 'patroni[etcd3]' psycopg2-binary)", allow_module_level=True)
try:
    import psycopg2  # noqa: F401
    PSYCOPG = "psycopg2"
except ImportError:
    try:
        import psycopg  # noqa: F401
        PSYCOPG = "psycopg"
    except ImportError:
        pytest.skip("Patroni needs psycopg2 or psycopg 3: pip install psycopg2-binary (Tests/e2e/requirements.txt)",
                    allow_module_level=True)

import harness  # noqa: E402

RUN = uuid.uuid4().hex[:6]
ROOT_PW = "root-pw"
PATRONI_PW = "patroni-pw"
SCOPE = f"e2e-{RUN}"
MEMBER = "pg0"  # the same member name on both servers, so their key names compare as they are
PG_USER = "postgres"


def _pg_bin() -> str | None:
    env = os.environ.get("KINE_PATRONI_PG_BIN")
    if env:
        return env if os.path.exists(os.path.join(env, "initdb")) else None
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(d, "initdb"))]
    dirs.sort(key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    return dirs[-1] if dirs else None


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (Patroni and PostgreSQL run as the postgres user)"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return "no postgres user (apt-get install postgresql)"
    if _pg_bin() is None:
        return "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; set KINE_PATRONI_PG_BIN)"
    return None


_WHY = _why_not()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)

PG_BIN = _pg_bin()


def _chown_pg(path: Path) -> None:
    pw = pwd.getpwnam(PG_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)


# As the postgres user: subprocess's user/group (setuid in the child before exec), not runuser,
# so that a SIGTERM reaches Patroni itself (runuser answers one by SIGKILLing its child 2 s later,
# cutting Patroni's shutdown short).
AS_PG = {"user": PG_USER, "group": PG_USER, "extra_groups": []}


def _as_postgres(cmd: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **AS_PG)
    except OSError as e:  # the executable itself is out of the postgres user's reach
        return subprocess.CompletedProcess(cmd, 127, "", str(e))


# =============================================================================================
# A python the postgres user can run Patroni with


IMPORTS = f"import patroni.dcs.etcd3, patroni.postgresql, {PSYCOPG}, etcd, yaml, psutil"


def _base_env(home: str) -> dict:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1"}


def _copy_distributions(dest: Path) -> None:
    """Patroni, python-etcd, the psycopg driver and everything they require, copied from this
    python's site-packages into `dest` (readable by all)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    # The driver under whichever distribution name it came (a missing one is passed over; the
    # import check after the copy says whether something is lacking).
    drivers = ["psycopg2-binary", "psycopg2"] if PSYCOPG == "psycopg2" else ["psycopg", "psycopg-binary", "psycopg-c"]
    wanted = ["patroni", "python-etcd", *drivers]
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                wanted.append(r.name)
        root = Path(dist.locate_file(""))
        for f in dist.files or []:
            src = Path(dist.locate_file(f))
            try:
                rel = src.resolve().relative_to(root.resolve())
            except ValueError:
                continue  # scripts in bin/ and the like
            if "__pycache__" in rel.parts or not src.is_file():
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
    for dirpath, dirnames, filenames in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for fn in filenames:
            os.chmod(os.path.join(dirpath, fn), 0o644 if not fn.endswith(".so") else 0o755)


@pytest.fixture(scope="module")
def patroni_python():
    """(python, extra environment) with which the postgres user can run Patroni."""
    probe_home = tempfile.mkdtemp(prefix="kine-e2e-patroni-probe-")
    os.chmod(probe_home, 0o755)
    site = None
    try:
        r = _as_postgres([sys.executable, "-c", IMPORTS], _base_env(probe_home))
        if r.returncode == 0:
            yield sys.executable, {}
            return
        first = (r.stderr.strip().splitlines() or ["?"])[-1]
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        candidates = [p for p in (f"/usr/bin/python{ver}", f"/usr/local/bin/python{ver}") if os.path.exists(p)]
        if not candidates:
            pytest.skip(f"the postgres user cannot run {sys.executable} ({first}) and there is no "
                        f"/usr/bin/python{ver} to run Patroni's packages with")
        site = Path(tempfile.mkdtemp(prefix="kine-e2e-patroni-site-"))
        os.chmod(site, 0o755)
        _copy_distributions(site)
        env = {"PYTHONPATH": str(site)}
        r2 = _as_postgres([candidates[0], "-c", IMPORTS], {**_base_env(probe_home), **env})
        if r2.returncode != 0:
            pytest.skip(f"the postgres user cannot run {sys.executable} ({first}), nor {candidates[0]} with "
                        f"copies of Patroni's packages: {r2.stderr.strip()[-400:]}")
        harness.log(f"patroni: running as postgres with {candidates[0]} and PYTHONPATH={site} "
                    f"({sys.executable} is not readable by postgres)")
        yield candidates[0], env
    finally:
        shutil.rmtree(probe_home, ignore_errors=True)
        if site is not None:
            shutil.rmtree(site, ignore_errors=True)


# =============================================================================================
# Servers with auth on


def ctl(server, *args: str, user: str | None = "root:" + ROOT_PW, timeout: float = 30):
    extra = [f"--user={user}"] if user else []
    return harness.etcdctl(server, *extra, *args, timeout=timeout)


def ctl_ok(server, *args: str, user: str | None = "root:" + ROOT_PW) -> str:
    r = ctl(server, *args, user=user)
    assert r.returncode == 0, (
        f"{server.name}: etcdctl {' '.join(args)} failed: {r.stderr.strip()}\n{server.log_tail(30)}")
    return r.stdout


def enable_auth(server) -> None:
    """docs/auth.md's steps: root, a patroni user with readwrite on /service/, auth enable."""
    for args in (
        ("user", "add", "root", f"--new-user-password={ROOT_PW}"),
        ("user", "grant-role", "root", "root"),
        ("role", "add", "patroni"),
        ("role", "grant-permission", "patroni", "readwrite", "/service/", "--prefix"),
        ("user", "add", "patroni", f"--new-user-password={PATRONI_PW}"),
        ("user", "grant-role", "patroni", "patroni"),
        ("auth", "enable"),
    ):
        ctl_ok(server, *args, user=None)
    # On from now on: no user is refused, root is let in.
    r = ctl(server, "get", "/service/x", user=None)
    assert r.returncode != 0 and "user name is empty" in r.stderr, (server.name, r.stdout, r.stderr)
    ctl_ok(server, "user", "list")


@pytest.fixture(scope="module")
def pair(server_factory):
    ref = server_factory.etcd(f"patroni-etcd-{RUN}")
    tgt = server_factory.target(f"patroni-{RUN}")
    for s in (ref, tgt):
        enable_auth(s)
    return ref, tgt


def keys_under(server, prefix: str) -> list[str]:
    out = ctl_ok(server, "get", "--prefix", prefix, "--keys-only")
    return sorted(k[len(prefix):] for k in out.splitlines() if k.strip())


def get_value(server, key: str) -> str | None:
    out = ctl_ok(server, "get", key, "--print-value-only")
    return out.rstrip("\n") if out else None


# =============================================================================================
# Patroni


class Patroni:
    """One Patroni (and the PostgreSQL it starts) as the postgres user, in a temp directory."""

    def __init__(self, python: tuple[str, dict], server, scope: str, name: str, password: str):
        self.server, self.scope, self.name = server, scope, name
        self.dir = Path(tempfile.mkdtemp(prefix=f"kine-e2e-patroni-{server.kind}-"))
        _chown_pg(self.dir)
        os.chmod(self.dir, 0o700)
        self.data = self.dir / "data"
        self.rest_port, self.pg_port = harness.free_port(), harness.free_port()
        while self.pg_port == self.rest_port:
            self.pg_port = harness.free_port()
        self.log_path = self.dir / "patroni.log"
        conf = self.dir / "patroni.yml"
        conf.write_text(self._config(password))
        _chown_pg(conf)
        os.chmod(conf, 0o600)
        py, extra = python
        env = {**_base_env(str(self.dir)), **extra}
        if os.environ.get("KINE_PATRONI_DEBUG") == "1":
            env["PATRONI_LOG_LEVEL"] = "DEBUG"
        log = open(self.log_path, "ab")
        # Own process group: stop() signals Patroni and its helpers, and nothing else.
        self.proc = subprocess.Popen([py, "-m", "patroni", str(conf)], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.dir),
                                     start_new_session=True, **AS_PG)
        log.close()

    def _config(self, password: str) -> str:
        host, port = self.server.endpoint.rsplit(":", 1)
        d = self.dir
        return f"""\
scope: {self.scope}
name: {self.name}
namespace: /service/
restapi:
  listen: 127.0.0.1:{self.rest_port}
  connect_address: 127.0.0.1:{self.rest_port}
etcd3:
  host: {host}:{port}
  protocol: http
  username: patroni
  password: {password}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    postgresql:
      use_pg_rewind: false
      parameters:
        shared_buffers: 16MB
  initdb:
    - encoding: UTF8
    - locale: C
postgresql:
  listen: 127.0.0.1:{self.pg_port}
  connect_address: 127.0.0.1:{self.pg_port}
  data_dir: {d}/data
  bin_dir: {PG_BIN}
  pgpass: {d}/pgpass
  authentication:
    superuser:
      username: postgres
      password: super-pw
    replication:
      username: replicator
      password: repl-pw
  parameters:
    unix_socket_directories: '{d}'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
tags:
  nofailover: false
"""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def rest(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}{path}", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """SIGTERM to Patroni's process group (Patroni then stops PostgreSQL itself), SIGKILL
        after 30 s; a postmaster left behind (it runs in a session of its own) is killed by its
        pid file. Safe to call twice."""
        harness.stop_process_group(self.proc, timeout=30)
        pid = self._postmaster_pid()
        if pid is not None:
            for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
                if not _is_postgres(pid):
                    break
                try:
                    os.killpg(pid, sig)  # the postmaster leads its own session: its backends too
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and _is_postgres(pid):
                    time.sleep(0.1)

    def remove(self) -> None:
        """stop(), then the directory goes unless KINE_E2E_KEEP=1."""
        self.stop()
        if os.environ.get("KINE_E2E_KEEP") == "1":
            harness.log(f"patroni: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def _is_postgres(pid: int) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return os.path.basename(exe).startswith("postgres") and state != "Z"


@pytest.fixture(scope="module")
def patronis(request, patroni_python):
    """Starts Patroni instances; every one is stopped and its directory removed at the end."""
    started: list[Patroni] = []

    def start(server, scope: str, name: str, password: str) -> Patroni:
        p = Patroni(patroni_python, server, scope, name, password)
        started.append(p)
        return p

    def stop_all():
        for p in started:
            p.remove()

    request.addfinalizer(stop_all)
    return start


def wait_leader(p: Patroni, deadline: float) -> None:
    key = f"/service/{p.scope}/leader"
    last = None
    while time.monotonic() < deadline:
        if not p.alive():
            pytest.fail(f"Patroni on {p.server.name} exited with {p.proc.returncode} before it led\n"
                        f"--- {p.log_path} ---\n{p.log_tail()}\n--- {p.server.name} ---\n{p.server.log_tail(20)}")
        last = (get_value(p.server, key), p.rest("/leader"))
        if last == (p.name, 200):
            return
        time.sleep(0.5)
    pytest.fail(f"Patroni on {p.server.name} did not take {key} in time (value, GET /leader: {last})\n"
                f"--- {p.log_path} ---\n{p.log_tail()}\n--- {p.server.name} ---\n{p.server.log_tail(20)}")


# =============================================================================================
# Tests


def test_patroni_bootstraps_and_leads(pair, patronis):
    ref, tgt = pair
    t0 = time.monotonic()
    pr = patronis(ref, SCOPE, MEMBER, PATRONI_PW)
    pt = patronis(tgt, SCOPE, MEMBER, PATRONI_PW)
    deadline = time.monotonic() + 90
    wait_leader(pr, deadline)
    wait_leader(pt, deadline)
    harness.log(f"patroni: both lead after {time.monotonic() - t0:.1f}s")

    prefix = f"/service/{SCOPE}/"
    # Patroni writes `status` (and refreshes `members/…`) on its next loops: the same set on both,
    # within a few of them.
    want = {"config", "initialize", "leader", f"members/{MEMBER}"}
    end = time.monotonic() + 20
    while True:
        kr, kt = keys_under(ref, prefix), keys_under(tgt, prefix)
        if kr == kt and want <= set(kr) or time.monotonic() > end:
            break
        time.sleep(1)
    harness.log(f"patroni: keys under {prefix}: etcd {kr}, {tgt.name} {kt}")
    assert want <= set(kr), f"etcd: {kr}"
    assert kt == kr, f"keys under {prefix}: etcd {kr}, {tgt.name} {kt}\n--- {pt.log_path} ---\n{pt.log_tail()}"
    for p in (pr, pt):
        assert p.alive(), p.log_tail()
        assert p.rest("/primary") == 200, p.server.name
        assert get_value(p.server, prefix + "leader") == MEMBER
        # The patroni user reads its own prefix, and nothing else.
        r = ctl(p.server, "get", "--prefix", prefix, "--keys-only", user=f"patroni:{PATRONI_PW}")
        assert r.returncode == 0 and prefix + "leader" in r.stdout, (p.server.name, r.stderr)
        r = ctl(p.server, "get", "/other", user=f"patroni:{PATRONI_PW}")
        assert r.returncode != 0 and "permission denied" in r.stderr, (p.server.name, r.stdout, r.stderr)
        assert "authentication failed" not in p.log_text().lower()

    # A clean shutdown: Patroni stops PostgreSQL and deletes its leader key (a Txn comparing the
    # value with its name), on both.
    for p in (pr, pt):
        p.stop()
        assert p.proc.returncode == 0, f"{p.server.name}: Patroni exited with {p.proc.returncode}\n{p.log_tail()}"
    kr, kt = keys_under(ref, prefix), keys_under(tgt, prefix)
    assert "leader" not in kr, f"etcd: {kr}"
    assert kt == kr, f"keys under {prefix} after the shutdown: etcd {kr}, {tgt.name} {kt}\n{pt.log_tail()}"


def test_patroni_wrong_password(pair, patronis):
    ref, tgt = pair
    scope = f"{SCOPE}-badpw"
    ps = [patronis(s, scope, MEMBER, "not-the-password") for s in (ref, tgt)]
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and any(p.alive() for p in ps):
        time.sleep(0.5)
    results = {}
    for p in ps:
        text = p.log_text()
        results[p.server.name] = {
            "exited": p.proc.poll(),
            "auth error logged": "authentication failed" in text.lower(),
            "leader key": get_value(p.server, f"/service/{scope}/leader"),
            "keys": keys_under(p.server, f"/service/{scope}/"),
            "initdb ran": (p.data / "PG_VERSION").exists(),
        }
    want = {"exited": 1, "auth error logged": True, "leader key": None, "keys": [], "initdb ran": False}
    for p in ps:
        assert results[p.server.name] == want, (
            f"{p.server.name}: {results[p.server.name]} (want {want})\n--- {p.log_path} ---\n{p.log_tail()}")
