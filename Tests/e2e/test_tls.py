"""TLS (issue 11): the etcd port with client certificates (etcdctl put, get, watch; refused
without a certificate or with one from another CA; ALPN h2 and http/1.1; a rotated certificate
served without a restart), h2c where no certificate is configured, TLS to PostgreSQL in
verify-full mode (and a clear error with the wrong CA), and JSON logs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.needs_kine


make_ca, make_cert = harness.make_ca, harness.make_cert


@pytest.fixture(scope="module")
def pki():
    d = Path(tempfile.mkdtemp(prefix="kine-e2e-pki-"))
    os.chmod(d, 0o755)
    ca = make_ca(d, "ca")
    other = make_ca(d, "other-ca")
    out = {
        "dir": d, "ca": ca, "other": other,
        "server": make_cert(d, ca, "server", "serverAuth"),
        "client": make_cert(d, ca, "client", "clientAuth"),
        "stranger": make_cert(d, other, "stranger", "clientAuth"),
    }
    yield out
    shutil.rmtree(d, ignore_errors=True)


def etcdctl_tls(port: int, pki, *args: str, cert: str | None = "client", timeout: float = 15) -> subprocess.CompletedProcess:
    cmd = [harness.etcdctl35(), f"--endpoints=https://127.0.0.1:{port}", "--dial-timeout=3s", "--command-timeout=5s",
           f"--cacert={pki['ca'][1]}"]
    if cert:
        cmd += [f"--cert={pki[cert][1]}", f"--key={pki[cert][0]}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, env={**env, "ETCDCTL_API": "3"})


@pytest.fixture(scope="module")
def tls_kine(postgres_url, pki):
    dbname = harness.unique_db_name("tls")
    harness.drop_database(postgres_url, dbname)
    work = Path(tempfile.mkdtemp(prefix="kine-e2e-tls-"))
    # The served certificate lives at a path the rotation test replaces.
    for part in ("key", "crt"):
        shutil.copy(pki["server"][0 if part == "key" else 1], work / f"served.{part}")
    port = harness.free_port()
    cmd = [harness.kine_binary(), "--listen-address", f"127.0.0.1:{port}", "--endpoint", harness.db_url(postgres_url, dbname),
           "--server-cert-file", str(work / "served.crt"), "--server-key-file", str(work / "served.key"),
           "--trusted-ca-file", str(pki["ca"][1]), "--log-format", "json"]
    proc = harness._spawn(cmd, work / "kine.log", dict(os.environ))
    srv = harness.Server(name="kine-tls", kind="kine", endpoint=f"127.0.0.1:{port}", proc=proc, log_path=work / "kine.log",
                         workdir=work, extra={"port": port})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert srv.alive(), srv.log_tail()
        if etcdctl_tls(port, pki, "endpoint", "status").returncode == 0:
            break
        time.sleep(0.3)
    else:
        srv.stop()
        pytest.fail(f"TLS kine did not answer\n{srv.log_tail()}")
    yield srv
    srv.stop()


def test_put_get_watch_with_client_certificate(tls_kine, pki):
    port = tls_kine.extra["port"]
    r = etcdctl_tls(port, pki, "put", "/tls/a", "one")
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr
    r = etcdctl_tls(port, pki, "get", "/tls/a", "--print-value-only")
    assert r.stdout.strip() == "one", r.stderr
    watch = subprocess.Popen(
        [harness.etcdctl35(), f"--endpoints=https://127.0.0.1:{port}", f"--cacert={pki['ca'][1]}",
         f"--cert={pki['client'][1]}", f"--key={pki['client'][0]}", "watch", "/tls/a", "--rev=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "ETCDCTL_API": "3"})
    try:
        time.sleep(1.5)
        etcdctl_tls(port, pki, "put", "/tls/a", "two")
        time.sleep(1.5)
    finally:
        watch.terminate()
    out, err = watch.communicate(timeout=10)
    assert out.split() == ["PUT", "/tls/a", "one", "PUT", "/tls/a", "two"], (out, err)


@pytest.mark.parametrize("cert", [None, "stranger"])
def test_refused_without_a_certificate_from_the_ca(tls_kine, pki, cert):
    r = etcdctl_tls(tls_kine.extra["port"], pki, "get", "/tls/a", cert=cert, timeout=20)
    assert r.returncode != 0, f"served a client with {cert or 'no'} certificate: {r.stdout}"
    # The handshake itself fails (Python's ssl shows it without etcdctl's retries).
    ctx = ssl.create_default_context(cafile=str(pki["ca"][1]))
    if cert:
        ctx.load_cert_chain(str(pki[cert][1]), str(pki[cert][0]))
    with socket.create_connection(("127.0.0.1", tls_kine.extra["port"]), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if not s.recv(1):  # TLS 1.3: the refusal arrives after the client's Finished
                    raise ConnectionResetError("closed")
    assert any("TLS handshake refused" in l for l in tls_kine.log_path.read_text().splitlines())


def tls_connect(port: int, pki, alpn: list[str]) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(pki["ca"][1]))
    ctx.load_cert_chain(str(pki["client"][1]), str(pki["client"][0]))
    ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_alpn_h2_and_http1_health(tls_kine, pki):
    port = tls_kine.extra["port"]
    with tls_connect(port, pki, ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "h2"
    with tls_connect(port, pki, ["http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b'"health":"true"' in data, data


def test_rotated_certificate_served_without_restart(tls_kine, pki):
    port = tls_kine.extra["port"]
    work = tls_kine.workdir
    with tls_connect(port, pki, ["h2"]) as s:
        before = s.getpeercert()["serialNumber"]
    fresh = make_cert(pki["dir"], pki["ca"], "server-rotated", "serverAuth")
    for src, name in ((fresh[0], "served.key"), (fresh[1], "served.crt")):
        shutil.copy(src, work / f"{name}.new")
        os.replace(work / f"{name}.new", work / name)
    after = None
    for _ in range(20):
        with tls_connect(port, pki, ["h2"]) as s:
            after = s.getpeercert()["serialNumber"]
        if after != before:
            break
        time.sleep(0.2)
    assert after != before, "the rotated certificate was not served"
    assert etcdctl_tls(port, pki, "get", "/tls/a", "--print-value-only").returncode == 0
    assert any("TLS certificate reloaded" in l for l in tls_kine.log_path.read_text().splitlines())


def test_h2c_without_certificate(target):
    r = harness.etcdctl(target, "endpoint", "status")
    assert r.returncode == 0, r.stderr


def test_json_logs_parse_line_by_line(tls_kine):
    lines = [l for l in tls_kine.log_path.read_text().splitlines() if l and not l.startswith("$ ")]
    assert lines
    records = [json.loads(l) for l in lines]  # every line is one JSON object
    assert all({"time", "level", "msg", "source"} <= set(r) for r in records), records[:3]
    assert any(r["msg"] == "kine ready" for r in records), [r["msg"] for r in records][:10]


# ---- TLS to PostgreSQL


@pytest.fixture(scope="module")
def ssl_postgres(pki):
    d = Path(tempfile.mkdtemp(prefix="kine-e2e-pgssl-"))
    os.chmod(d, 0o755)
    port = harness.free_port()
    script = harness.REPO / "scripts" / "postgres.sh"
    subprocess.run(["bash", str(script), "start", str(d / "pg"), str(port)], check=True, capture_output=True, timeout=180)
    key, crt = make_cert(d, pki["ca"], "pg-server", "serverAuth")
    for f in (key, crt):
        shutil.chown(f, "postgres", "postgres")
    os.chmod(key, 0o600)
    url = f"postgres://postgres@127.0.0.1:{port}/postgres"
    for statement in (f"ALTER SYSTEM SET ssl_cert_file = '{crt}'", f"ALTER SYSTEM SET ssl_key_file = '{key}'",
                      "ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"):
        harness.psql(url, statement)  # ALTER SYSTEM refuses a transaction block
    yield port
    subprocess.run(["bash", str(script), "stop", str(d / "pg")], capture_output=True, timeout=120)
    shutil.rmtree(d, ignore_errors=True)


def test_datastore_tls_verify_full(ssl_postgres, pki):
    srv = harness.start_kine("kine-pgtls", f"postgres://postgres@localhost:{ssl_postgres}/kine_tls",
                             ["--ca-file", str(pki["ca"][1])])
    try:
        r = harness.etcdctl(srv, "put", "/pg/tls", "v")
        assert r.returncode == 0, r.stderr
        url = f"postgres://postgres@127.0.0.1:{ssl_postgres}/kine_tls"
        used = harness.psql(url, "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                                 "WHERE a.application_name = 'kine' AND s.ssl")
        assert int(used.strip()) > 0, "kine's connections do not use TLS"
    finally:
        srv.stop()


def test_datastore_tls_wrong_ca_names_the_failure(ssl_postgres, pki):
    work = Path(tempfile.mkdtemp(prefix="kine-e2e-pgtls-bad-"))
    cmd = [harness.kine_binary(), "--listen-address", f"127.0.0.1:{harness.free_port()}",
           "--endpoint", f"postgres://postgres@localhost:{ssl_postgres}/kine_tls_bad", "--ca-file", str(pki["other"][1])]
    proc = harness._spawn(cmd, work / "kine.log", dict(os.environ))
    srv = harness.Server(name="kine-pgtls-bad", kind="kine", endpoint="", proc=proc, log_path=work / "kine.log", workdir=work)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "certificate verify failed" not in srv.log_path.read_text():
            time.sleep(0.3)
        assert "certificate verify failed" in srv.log_path.read_text(), srv.log_tail()
    finally:
        srv.stop()


def test_client_certificate_common_name_is_the_auth_user(postgres_url, pki):
    """With client certificates and auth on, a request without a token acts as the user named by
    its certificate's common name (etcd's --client-cert-auth rule): the same etcdctl steps, with
    certificates for CN=root, CN=alice and CN=client (no such user), on a TLS etcd 3.5.1 and a TLS
    kine, outputs compared."""
    d = pki["dir"]
    certs = {"root": make_cert(d, pki["ca"], "root", "clientAuth"), "alice": make_cert(d, pki["ca"], "alice", "clientAuth")}
    keyed = {**pki, **certs}
    work = Path(tempfile.mkdtemp(prefix="kine-e2e-tls-cn-"))
    servers = []
    try:
        cport, pport = harness.free_port(), harness.free_port()
        etcd = harness._spawn(
            [harness.etcd35(), "--name", "cn", "--data-dir", str(work / "etcd"),
             "--listen-client-urls", f"https://127.0.0.1:{cport}", "--advertise-client-urls", f"https://127.0.0.1:{cport}",
             "--listen-peer-urls", f"http://127.0.0.1:{pport}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
             "--initial-cluster", f"cn=http://127.0.0.1:{pport}", "--cert-file", str(pki["server"][1]),
             "--key-file", str(pki["server"][0]), "--client-cert-auth", "--trusted-ca-file", str(pki["ca"][1])],
            work / "etcd.log", dict(os.environ))
        servers.append(etcd)
        dbname = harness.unique_db_name("tlscn")
        harness.drop_database(postgres_url, dbname)
        kport = harness.free_port()
        kine = harness._spawn(
            [harness.kine_binary(), "--listen-address", f"127.0.0.1:{kport}", "--endpoint", harness.db_url(postgres_url, dbname),
             "--server-cert-file", str(pki["server"][1]), "--server-key-file", str(pki["server"][0]),
             "--trusted-ca-file", str(pki["ca"][1]), "--metrics-bind-address", "0"],
            work / "kine.log", dict(os.environ))
        servers.append(kine)
        for port in (cport, kport):
            deadline = time.monotonic() + 60
            while etcdctl_tls(port, keyed, "endpoint", "status", cert="root").returncode != 0:
                assert time.monotonic() < deadline, f"no TLS server on {port}"
                time.sleep(0.3)
        steps = [
            ("root", ["user", "add", "root:root-pw"]), ("root", ["user", "grant-role", "root", "root"]),
            ("root", ["user", "add", "alice:alice-pw"]), ("root", ["role", "add", "app"]),
            ("root", ["role", "grant-permission", "app", "readwrite", "/cn/", "--prefix"]),
            ("root", ["user", "grant-role", "alice", "app"]), ("root", ["auth", "enable"]),
            ("alice", ["put", "/cn/a", "one"]), ("alice", ["get", "/cn/a", "--print-value-only"]),
            ("alice", ["put", "/other", "x"]), ("alice", ["user", "list"]),
            ("client", ["get", "/cn/a"]), ("root", ["user", "list"]), ("root", ["put", "/other", "y"]),
            ("root", ["auth", "disable"]),
        ]
        outputs = {}
        for name, port in (("etcd", cport), ("kine", kport)):
            outputs[name] = []
            for cert, args in steps:
                r = etcdctl_tls(port, keyed, *args, cert=cert)
                error = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
                outputs[name].append((cert, args, r.returncode, r.stdout.strip(), error))
        assert outputs["kine"] == outputs["etcd"]
        assert outputs["kine"][9][4] == ["Error: etcdserver: permission denied"], outputs["kine"][9]
    finally:
        for proc in servers:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
