"""Auth survives a restart: users, roles, permissions and "auth enabled" are kept across a
graceful stop (SIGTERM) and a new start on the same data, compared with etcd 3.5.1 (then a
second SIGTERM restart, and a kill -9 restart).

The same etcdctl 3.5 commands run on an etcd with a data dir (stopped with SIGTERM and started
again on that data dir, on the same ports) and on a kine (stopped with SIGTERM and started again
on the same PostgreSQL database): before the restart, root (with the root role), a role `app`
with readwrite on a prefix and read on another, a user `alice` with that role, auth enabled;
after it, what alice may and may not do, what root sees, a permission revoked after the restart.
Every command's exit code, stdout and "Error:" line is compared between the two.

With KINE_E2E_TARGET=etcd both sides are etcd (validates the steps themselves).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import harness
from conftest import TARGET
from normalize import assert_same

RUN = uuid.uuid4().hex[:6]
ROOT = "root:root-pw"
ALICE = "alice:alice-pw"


def _stop(side, sig: int) -> None:
    """SIGTERM (Server.stop: to the process group, SIGKILL after 10 s), or kill -9 at once."""
    srv = side.server
    if srv is None or not srv.alive():
        return
    if sig == signal.SIGKILL:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
    srv.stop()
    side.exit_codes.append(srv.proc.returncode)


class EtcdOnDataDir:
    """An etcd 3.5 whose data dir outlives the process: start() again after stop() reopens it
    on the same client and peer ports."""

    def __init__(self, name: str):
        self.name = name
        self.work = Path(tempfile.mkdtemp(prefix=f"kine-e2e-{name}-"))
        self.cport = harness.free_port()
        self.pport = harness.free_port()
        while self.pport == self.cport:
            self.pport = harness.free_port()
        self.server: harness.Server | None = None
        self.exit_codes: list[int | None] = []

    def start(self) -> harness.Server:
        client, peer = f"http://127.0.0.1:{self.cport}", f"http://127.0.0.1:{self.pport}"
        cmd = [harness.etcd35(), "--name", self.name, "--data-dir", str(self.work / "data"),
               "--listen-client-urls", client, "--advertise-client-urls", client,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"{self.name}={peer}", "--initial-cluster-state", "new",
               "--initial-cluster-token", f"kine-e2e-{self.name}-{os.getpid()}", "--log-level", "warn"]
        env = dict(os.environ)
        env.pop("ETCD_UNSUPPORTED_ARCH", None)
        log = self.work / "etcd.log"
        # workdir=None: Server.stop() must not delete the data dir between the two runs.
        self.server = harness.Server(name=self.name, kind="etcd3.5", endpoint=f"127.0.0.1:{self.cport}",
                                     proc=harness._spawn(cmd, log, env), log_path=log)
        harness.wait_ready(self.server)
        return self.server

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self, sig)

    def close(self) -> None:
        self.stop()
        if os.environ.get("KINE_E2E_KEEP") != "1":
            shutil.rmtree(self.work, ignore_errors=True)


class KineOnDatabase:
    """A kine whose database outlives the process: start() again after stop() runs a new kine
    on the same database (a new port: etcdctl is given the endpoint each time)."""

    def __init__(self, factory, name: str):
        self.factory = factory
        self.name = name
        self.url = factory.database("authdur")
        self.server: harness.Server | None = None
        self.runs = 0
        self.exit_codes: list[int | None] = []

    def start(self) -> harness.Server:
        self.runs += 1
        self.server = self.factory.kine(f"{self.name}-{self.runs}", self.url)
        return self.server

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self, sig)

    def close(self) -> None:
        self.stop()  # the factory drops the database at the end of the module


@pytest.fixture
def restartables(server_factory):
    ref = EtcdOnDataDir(f"authdur-etcd-{RUN}")
    tgt = EtcdOnDataDir(f"authdur-target-{RUN}") if TARGET == "etcd" else None
    if TARGET == "etcd34":
        pytest.skip("auth durability is compared between etcd 3.5 and kine")
    if tgt is None:
        tgt = KineOnDatabase(server_factory, f"authdur-kine-{RUN}")
    try:
        yield ref, tgt
    finally:
        for s in (ref, tgt):
            s.close()


def run(server: harness.Server, *args: str) -> tuple[int, str, list[str]]:
    """One etcdctl 3.5 command: (exit code, stdout, the "Error:" lines of stderr)."""
    r = harness.etcdctl(server, *args)
    errors = [l.strip() for l in r.stderr.splitlines() if l.startswith("Error:")]
    if r.returncode != 0 and not errors:
        errors = [r.stderr.strip()[-300:]]
    return r.returncode, r.stdout, errors


P = "/e2e-authdur/"  # keys under P + "app/" (readwrite), P + "ro/" (read); P + "other/" is no one's

BEFORE = [
    ("role add root", ["role", "add", "root"]),
    ("user add root", ["user", "add", "root", "--new-user-password=root-pw"]),
    ("user grant-role root root", ["user", "grant-role", "root", "root"]),
    ("role add app", ["role", "add", "app"]),
    ("grant readwrite app/", ["role", "grant-permission", "app", "readwrite", P + "app/", "--prefix"]),
    ("grant read ro/", ["role", "grant-permission", "app", "read", P + "ro/", "--prefix"]),
    ("user add alice", ["user", "add", "alice", "--new-user-password=alice-pw"]),
    ("user grant-role alice app", ["user", "grant-role", "alice", "app"]),
    ("seed ro/x", ["put", P + "ro/x", "seed"]),
    ("seed other/k", ["put", P + "other/k", "other"]),
    ("auth enable", ["auth", "enable"]),
    ("alice put app/before", ["--user", ALICE, "put", P + "app/before", "v0"]),
    ("alice get app/ before", ["--user", ALICE, "get", P + "app/", "--prefix"]),
    ("alice put other/ before", ["--user", ALICE, "put", P + "other/k", "x"]),
    ("auth status before", ["--user", ROOT, "auth", "status"]),
]

AFTER = [
    ("auth status, no user", ["auth", "status"]),
    ("auth status as root", ["--user", ROOT, "auth", "status"]),
    ("alice put app/k", ["--user", ALICE, "put", P + "app/k", "v1"]),
    ("alice get app/ --prefix", ["--user", ALICE, "get", P + "app/", "--prefix"]),
    ("alice get app/before", ["--user", ALICE, "get", P + "app/before"]),
    ("alice delete app/k", ["--user", ALICE, "del", P + "app/k"]),
    ("alice get ro/x", ["--user", ALICE, "get", P + "ro/x"]),
    ("alice put ro/x (read only)", ["--user", ALICE, "put", P + "ro/x", "y"]),
    ("alice put other/k", ["--user", ALICE, "put", P + "other/k", "y"]),
    ("alice get other/k", ["--user", ALICE, "get", P + "other/k"]),
    ("alice get the whole prefix", ["--user", ALICE, "get", P, "--prefix"]),
    ("alice delete other/k", ["--user", ALICE, "del", P + "other/k"]),
    ("alice user list (not root)", ["--user", ALICE, "user", "list"]),
    ("no user get app/before", ["get", P + "app/before"]),
    ("alice wrong password", ["--user", "alice:wrong", "get", P + "app/before"]),
    ("root user list", ["--user", ROOT, "user", "list"]),
    ("root role list", ["--user", ROOT, "role", "list"]),
    ("root role get app", ["--user", ROOT, "role", "get", "app"]),
    ("root user get alice", ["--user", ROOT, "user", "get", "alice"]),
    ("root user get root", ["--user", ROOT, "user", "get", "root"]),
    ("root get everything", ["--user", ROOT, "get", P, "--prefix"]),
    # The store is writable after the restart and the change holds.
    ("root revoke readwrite app/", ["--user", ROOT, "role", "revoke-permission", "app", P + "app/", "--prefix"]),
    ("alice put app/k after revoke", ["--user", ALICE, "put", P + "app/k", "v2"]),
    ("alice get app/before after revoke", ["--user", ALICE, "get", P + "app/before"]),
    ("alice get ro/x after revoke", ["--user", ALICE, "get", P + "ro/x"]),
    ("auth status after revoke", ["--user", ROOT, "auth", "status"]),
    ("root get everything at the end", ["--user", ROOT, "get", P, "--prefix"]),
]

# After a second restart (the change made after the first one is durable too).
AFTER_SECOND = [
    ("auth status (2nd restart)", ["--user", ROOT, "auth", "status"]),
    ("alice put app/k (2nd restart)", ["--user", ALICE, "put", P + "app/k", "v3"]),
    ("alice get ro/x (2nd restart)", ["--user", ALICE, "get", P + "ro/x"]),
    ("root role get app (2nd restart)", ["--user", ROOT, "role", "get", "app"]),
    ("root auth disable (2nd restart)", ["--user", ROOT, "auth", "disable"]),
    ("no user get other/k, auth off (2nd restart)", ["get", P + "other/k"]),
]

# After a kill -9 (the auth disable made before it is durable too).
AFTER_THIRD = [
    ("auth status, disabled (3rd restart)", ["auth", "status"]),
    ("no user put other/k, auth off (3rd restart)", ["put", P + "other/k", "z"]),
    ("user list, auth off (3rd restart)", ["user", "list"]),
    ("role get app, auth off (3rd restart)", ["role", "get", "app"]),
]


def run_steps(server: harness.Server, steps) -> list:
    return [(name, *run(server, *args)) for name, args in steps]


def test_auth_survives_restart(restartables):
    ref, tgt = restartables
    records = {}
    timings = {}
    for side in (ref, tgt):
        rec = []
        srv = side.start()
        rec += run_steps(srv, BEFORE)
        for phase, sig, steps in (("after", signal.SIGTERM, AFTER), ("after-second", signal.SIGTERM, AFTER_SECOND),
                                  ("after-third", signal.SIGKILL, AFTER_THIRD)):
            t0 = time.monotonic()
            side.stop(sig)
            if sig == signal.SIGTERM:
                assert side.exit_codes[-1] not in (None, -signal.SIGKILL), f"{side.name} did not exit on SIGTERM"
            srv = side.start()
            timings.setdefault(side.name, []).append(round(time.monotonic() - t0, 2))
            rec.append((f"--- restarted ({phase})", 0, "", []))
            rec += run_steps(srv, steps)
        records[side.name] = rec
        side.stop()

    r, t = records[ref.name], records[tgt.name]
    if os.environ.get("KINE_E2E_DUMP") == "1":
        for x in r:
            print(x)
    # The steps that must succeed did, on the reference (else the steps themselves are wrong).
    want_ok = {"alice put app/k", "alice get app/ --prefix", "alice get ro/x", "auth status as root",
               "root user list", "alice get ro/x (2nd restart)"}
    for name, rc, out, err in r:
        if name in want_ok:
            assert rc == 0, f"etcd: {name}: {err}"
    assert_same([list(x) for x in r], [list(x) for x in t], "etcdctl steps across restarts",
                actual_name=TARGET)
    # The invariants, stated directly too (so a failure says what broke).
    got = {name: (rc, out, err) for name, rc, out, err in t}
    assert got["auth status as root"][1].startswith("Authentication Status: true"), got["auth status as root"]
    assert got["alice put app/k"][0] == 0, got["alice put app/k"]
    assert got["alice put other/k"][2] == ["Error: etcdserver: permission denied"], got["alice put other/k"]
    assert got["alice get other/k"][2] == ["Error: etcdserver: permission denied"], got["alice get other/k"]
    assert got["alice put app/k after revoke"][2] == ["Error: etcdserver: permission denied"]
    assert got["alice put app/k (2nd restart)"][2] == ["Error: etcdserver: permission denied"], \
        "a revoke made after a restart did not survive the next one"
    assert got["auth status, disabled (3rd restart)"][1].startswith("Authentication Status: false")
    print(f"\n[auth durability] restart times (stop + start until ready) {timings}; "
          f"exit codes of each stop (SIGTERM, SIGTERM, kill -9, SIGTERM): {ref.name} {ref.exit_codes}, {tgt.name} {tgt.exit_codes}")
