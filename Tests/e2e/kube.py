"""A kube-apiserver and kube-controller-manager with no cluster around them, for the Kubernetes
suites and benchmarks (test_kubernetes.py and others).

    files = make_files(workdir)                       # sa key pair, token file, cert dir
    api = start_apiserver("api-kine", "http://127.0.0.1:2379", extra_args=["--event-ttl=5s"])
    r = api.client().get("/api/v1/namespaces")        # Response(status, body, text, headers)
    for ev in api.client().watch("/api/v1/configmaps", {"resourceVersion": rv}).events(timeout=5): ...
    cm = start_controller_manager("cm-kine", api)     # with a kubeconfig written for `api`
    cm.stop(); api.stop()                              # process group SIGTERM, then SIGKILL; temp dirs removed

Everything runs on the address the caller gives (loopback by default). `command_prefix` lets a
caller run the programs elsewhere, e.g. `["ip", "netns", "exec", "ns1"]`; `reach_host` is then the
address this process uses to talk to the apiserver (default: the bind address, 127.0.0.1 for
0.0.0.0). The apiserver's serving certificate is the self-signed one it makes in its cert dir; the
client does not verify it and authenticates with the static bearer token of group system:masters
(flags from ../shared/tools/kubernetes/README.md). Binaries come from kubebin (a pytest skip when
missing, through `kubebin.require`).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import harness  # terminate_group
import kubebin

DEFAULT_TIMEOUT = 30.0


# --------------------------------------------------------------------------------------------
# Files: service-account key pair, token file, cert dir


@dataclass
class KubeFiles:
    """What an apiserver (and its controller-manager) needs on disk, all inside `workdir`."""

    workdir: Path
    sa_key: Path
    sa_pub: Path
    tokens_csv: Path
    token: str
    cert_dir: Path


def make_files(workdir: Path | str, token: str | None = None) -> KubeFiles:
    """A 2048-bit service-account key pair (openssl), a static token file with one token in group
    system:masters, and an empty cert dir the apiserver fills with a self-signed certificate."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    sa_key, sa_pub = work / "sa.key", work / "sa.pub"
    subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)],
                   check=True, capture_output=True, timeout=60)
    token = token or secrets.token_hex(16)
    tokens = work / "tokens.csv"
    tokens.write_text(f'{token},admin,admin-uid,"system:masters"\n')
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    return KubeFiles(workdir=work, sa_key=sa_key, sa_pub=sa_pub, tokens_csv=tokens, token=token, cert_dir=certs)


# --------------------------------------------------------------------------------------------
# REST client


@dataclass
class Response:
    """An HTTP answer: status code, the body parsed as JSON (None if it is not JSON) and as text."""

    status: int
    body: Any
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        """`reason` of a Status body (NotFound, Conflict, Expired, AlreadyExists, ...)."""
        return self.body.get("reason") if isinstance(self.body, dict) else None

    @property
    def items(self) -> list[dict]:
        return list(self.body.get("items") or []) if isinstance(self.body, dict) else []

    @property
    def names(self) -> list[str]:
        return [it["metadata"]["name"] for it in self.items]

    @property
    def resource_version(self) -> str:
        return (self.body or {}).get("metadata", {}).get("resourceVersion", "")

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.text[:400]!r})"


def _ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class WatchStream:
    """A watch (`?watch=1`): one JSON event a line, read by a thread into a queue so that
    `next(timeout)` can give up without losing its place in the stream. Every event is also kept
    in `received` with its arrival time (time.monotonic()); `ended_at` and `end_error` say when and
    how the server ended the stream (None while it is open, or after `close()`)."""

    def __init__(self, conn: http.client.HTTPSConnection, response: http.client.HTTPResponse):
        self.conn = conn
        self.response = response
        self.status = response.status
        self.received: list[tuple[float, dict]] = []
        self.ended_at: float | None = None
        self.end_error: str | None = None
        self._q: queue.Queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                line = line.strip()
                if line:
                    event = json.loads(line)
                    self.received.append((time.monotonic(), event))
                    self._q.put(event)
        except Exception as e:  # closed by us, or the server went away
            if not self._closed:
                self.end_error = f"{type(e).__name__}: {e}"[:200]
                self._q.put(e)
        if not self._closed:
            self.ended_at = time.monotonic()
        self._q.put(None)

    @property
    def ended(self) -> bool:
        """The server ended the stream (cleanly or not); a quiet stream is not ended."""
        return self.ended_at is not None

    def next(self, timeout: float) -> dict | None:
        """The next event ({"type": ..., "object": ...}), or None after `timeout` or at the end."""
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            self._q.put(None)  # stay ended
            return None
        if isinstance(item, Exception):
            raise item
        return item

    def events(self, timeout: float, quiet: float | None = None) -> Iterator[dict]:
        """Events until the stream ends, `timeout` seconds pass, or (with `quiet`) none came for
        that long."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ev = self.next(min(left, quiet) if quiet else left)
            if ev is None:
                return
            yield ev

    def collect(self, timeout: float, until=None, quiet: float | None = None) -> list[dict]:
        """Events as a list; stops early after one for which `until(event)` is true."""
        out = []
        for ev in self.events(timeout, quiet):
            out.append(ev)
            if until is not None and until(ev):
                break
        return out

    def close(self) -> None:
        self._closed = True
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "WatchStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RestClient:
    """Kubernetes REST over HTTPS (certificate not verified) with a bearer token: one connection
    a request, so it can be used from several threads."""

    def __init__(self, host: str, port: int, token: str, timeout: float = DEFAULT_TIMEOUT):
        self.host, self.port, self.token, self.timeout = host, port, token, timeout
        self._ctx = _ssl_context()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _conn(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self._ctx, timeout=timeout)

    @staticmethod
    def _path(path: str, params: dict | None) -> str:
        if not params:
            return path
        q = urllib.parse.urlencode({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()
                                    if v is not None})
        return path + ("&" if "?" in path else "?") + q

    def _headers(self, content_type: str | None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type:
            h["Content-Type"] = content_type
        return h

    def request(self, method: str, path: str, body: Any = None, params: dict | None = None,
                content_type: str = "application/json", timeout: float | None = None) -> Response:
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        conn = self._conn(timeout or self.timeout)
        try:
            conn.request(method, self._path(path, params), body=data,
                         headers=self._headers(content_type if data is not None else None))
            r = conn.getresponse()
            raw = r.read()
            headers = {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()
        text = raw.decode(errors="replace")
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return Response(r.status, parsed, text, headers)

    def get(self, path: str, params: dict | None = None, **kw) -> Response:
        return self.request("GET", path, params=params, **kw)

    def post(self, path: str, body: Any, params: dict | None = None, **kw) -> Response:
        return self.request("POST", path, body, params=params, **kw)

    def put(self, path: str, body: Any, params: dict | None = None, **kw) -> Response:
        return self.request("PUT", path, body, params=params, **kw)

    def patch(self, path: str, body: Any, params: dict | None = None,
              content_type: str = "application/merge-patch+json", **kw) -> Response:
        return self.request("PATCH", path, body, params=params, content_type=content_type, **kw)

    def delete(self, path: str, body: Any = None, params: dict | None = None, **kw) -> Response:
        return self.request("DELETE", path, body, params=params, **kw)

    def watch(self, path: str, params: dict | None = None, timeout: float = 120.0) -> WatchStream:
        """Opens `path?watch=1&...`. A refused watch (not 200) still gives a WatchStream whose
        `status` says so and whose single event is the Status body."""
        p = dict(params or {})
        p["watch"] = "1"
        p.setdefault("timeoutSeconds", int(timeout))
        conn = self._conn(timeout + 10)
        try:
            conn.request("GET", self._path(path, p), headers=self._headers(None))
            return WatchStream(conn, conn.getresponse())
        except BaseException:
            conn.close()
            raise

    def wait_for(self, predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
        """Calls predicate() until it returns something truthy; fails with `what` after timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = predicate()
            if last:
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not true after {timeout}s (last: {last!r})")
            time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Processes


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    log.write(("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n").encode())
    log.flush()
    try:
        # Own process group: stop() ends the program (and `ip netns exec`) and nothing else.
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        log.close()


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        harness.terminate_group(proc, grace)
    # Whatever is left in the group (also after the leader exited), then the leader.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class KubeProcess:
    """A running Kubernetes program with its log and (owned) work directory."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    workdir: Path | None
    owns_workdir: bool = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:]) or "(no log)"

    def stop(self) -> None:
        _stop_group(self.proc)
        if self.workdir is not None and self.owns_workdir and os.environ.get("KINE_E2E_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class APIServer(KubeProcess):
    """A kube-apiserver: `files` holds its keys and token; `client()` talks to it."""

    files: KubeFiles | None = None
    host: str = "127.0.0.1"
    port: int = 0
    etcd_servers: str = ""
    command_prefix: list[str] = field(default_factory=list)
    # Programs started for this apiserver (controller-managers), stopped before it.
    dependents: list[KubeProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        assert self.files is not None
        return self.files.token

    def client(self, timeout: float = DEFAULT_TIMEOUT) -> RestClient:
        return RestClient(self.host, self.port, self.token, timeout)

    def metrics(self) -> str:
        """The apiserver's /metrics text (Prometheus exposition)."""
        r = self.client().get("/metrics")
        assert r.status == 200, r
        return r.text

    def write_kubeconfig(self, path: Path | str | None = None, server_url: str | None = None) -> Path:
        """A kubeconfig (JSON, which is YAML) for this apiserver: the bearer token, TLS not
        verified. `server_url` for a program that reaches it by another address."""
        assert self.files is not None
        p = Path(path) if path else self.files.workdir / "kubeconfig"
        cfg = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server_url or self.url,
                                                       "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        p.write_text(json.dumps(cfg, indent=2) + "\n")
        return p

    def stop(self) -> None:
        for d in reversed(self.dependents):
            d.stop()
        self.dependents.clear()
        super().stop()


def wait_ready(api: APIServer, timeout: float = 90.0, path: str = "/readyz") -> None:
    """Until GET `path` answers 200 "ok"; on timeout or exit, stops the apiserver and raises with
    its log tail."""
    deadline = time.monotonic() + timeout
    cl = api.client(timeout=5)
    last = ""
    while time.monotonic() < deadline:
        if not api.alive():
            api.stop()
            raise RuntimeError(f"{api.name} exited with {api.proc.returncode} before it was ready\n"
                               f"--- log {api.log_path} ---\n{api.log_tail()}")
        try:
            r = cl.get(path)
            if r.status == 200:
                return
            last = f"{r.status} {r.text[-300:]}"
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
        time.sleep(0.3)
    tail = api.log_tail()
    api.stop()
    raise RuntimeError(f"{api.name} not ready after {timeout}s: {last}\n--- log ---\n{tail}")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_apiserver(name: str, etcd_servers: str, *, bind_address: str = "127.0.0.1",
                    port: int | None = None, extra_args: list[str] | None = None,
                    command_prefix: list[str] | None = None, reach_host: str | None = None,
                    workdir: Path | str | None = None, files: KubeFiles | None = None,
                    binary: str | None = None, ready_timeout: float = 90.0,
                    wait: bool = True) -> APIServer:
    """Starts kube-apiserver on `etcd_servers` (http://host:port, unix:///abs/path.sock, or a
    comma-separated list) serving HTTPS on bind_address:port (a free loopback port if None),
    waits for /readyz (unless wait=False), and returns it. `extra_args` go last (so they win over
    the defaults here), e.g. ["--etcd-compaction-interval=10s", "--event-ttl=5s",
    "--watch-cache=false", "--etcd-prefix=/other"]. `workdir` (made if missing) holds its files and
    log; a temp dir removed by stop() when not given."""
    binary = binary or kubebin.require("kube-apiserver")["kube-apiserver"]
    owns = workdir is None
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"kine-kube-{name}-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        files = files or make_files(work)
    except Exception:
        if owns:
            shutil.rmtree(work, ignore_errors=True)
        raise
    port = port or _free_port()
    advertise = bind_address if bind_address not in ("0.0.0.0", "::") else "127.0.0.1"
    cmd = list(command_prefix or []) + [
        binary,
        f"--etcd-servers={etcd_servers}",
        f"--secure-port={port}",
        f"--bind-address={bind_address}",
        f"--advertise-address={advertise}",
        f"--cert-dir={files.cert_dir}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={files.sa_pub}",
        f"--service-account-signing-key-file={files.sa_key}",
        "--authorization-mode=AlwaysAllow",
        f"--token-auth-file={files.tokens_csv}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--endpoint-reconciler-type=none",
    ] + list(extra_args or [])
    log_path = work / "kube-apiserver.log"
    api = APIServer(name=name, proc=_spawn(cmd, log_path), log_path=log_path, workdir=work, owns_workdir=owns,
                    files=files, host=reach_host or advertise, port=port, etcd_servers=etcd_servers,
                    command_prefix=list(command_prefix or []))
    if wait:
        wait_ready(api, ready_timeout)
    return api


def start_controller_manager(name: str, api: APIServer, *, controllers: str = "*",
                             leader_elect: bool = True, extra_args: list[str] | None = None,
                             command_prefix: list[str] | None = None, server_url: str | None = None,
                             binary: str | None = None) -> KubeProcess:
    """Starts kube-controller-manager against `api` (a kubeconfig written into the apiserver's
    work dir; `server_url` if the controller-manager reaches it by another address), with the
    apiserver's service-account signing key, no serving port. The apiserver's stop() stops it
    first; it can also be stopped on its own. Does not wait for anything: callers wait for what
    they need (the leader Lease, a controller's work)."""
    binary = binary or kubebin.require("kube-controller-manager")["kube-controller-manager"]
    assert api.files is not None and api.workdir is not None
    work = api.workdir / name
    work.mkdir(parents=True, exist_ok=True)
    kubeconfig = api.write_kubeconfig(work / "kubeconfig", server_url)
    (work / "flex").mkdir(exist_ok=True)
    prefix = api.command_prefix if command_prefix is None else command_prefix
    cmd = list(prefix) + [
        binary,
        f"--kubeconfig={kubeconfig}",
        f"--leader-elect={'true' if leader_elect else 'false'}",
        f"--controllers={controllers}",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={api.files.sa_key}",
        "--secure-port=0",
        f"--flex-volume-plugin-dir={work / 'flex'}",
    ] + list(extra_args or [])
    log_path = work / "kube-controller-manager.log"
    cm = KubeProcess(name=name, proc=_spawn(cmd, log_path), log_path=log_path, workdir=work, owns_workdir=False)
    api.dependents.append(cm)
    return cm


# --------------------------------------------------------------------------------------------
# Small helpers for the suites


def metric_families(text: str) -> set[str]:
    """Names of the metric families in a Prometheus text exposition (from # TYPE lines)."""
    out = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            out.add(line.split()[2])
    return out


def metric_samples(text: str, name: str) -> list[tuple[str, float]]:
    """(labels text, value) of every sample of metric `name` (exact name, with its suffix)."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, brace, labels = head.partition("{")
        if metric != name:
            continue
        try:
            out.append(((brace + labels) if brace else "", float(value)))
        except ValueError:
            pass
    return out


def readyz_checks(text: str) -> dict[str, str]:
    """`/readyz?verbose` / `/livez?verbose` lines `[+]etcd ok` as {"etcd": "ok"}; failed checks
    (`[-]name failed: reason ...`) as "failed"."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[+]") or line.startswith("[-]"):
            name, _, rest = line[3:].partition(" ")
            out[name] = "ok" if line.startswith("[+]") else "failed"
    return out
