"""Authentication and authorisation (etcd's Auth service) against etcd 3.5.1, differentially.

Auth is global to a server (enabling it changes what every client may do), so this module has a
pair of servers of its own, never the session's: a fresh etcd and a fresh target (kine on a new
database, or with KINE_E2E_TARGET=etcd a second etcd). Every test leaves auth disabled and no
users or roles behind (the `_clean` fixture undoes what a failed test left, as root).

Three kinds of test, each running the same steps on both servers:
  * raw gRPC scripts (both servers at once, one thread each): every request and response, or
    the error's gRPC code and exact message, is recorded and the two records are compared after
    normalisation: revisions relative to the case's start, identities masked, tokens → "<token>",
    AuthStatus's authRevision relative to the case's start ("arev+N"), lease IDs → L1, L2, ...,
    Status, Hash, HashKV, Defragment and Snapshot answers recorded as "ok" or their error;
  * etcdctl 3.5 commands, one at a time on each server, outputs compared at once (stdout
    normalised as above, the "Error:" lines of stderr);
  * the HTTP/JSON gateway: Authenticate, then requests carrying the token in a header.
Tokens go as the gRPC metadata "token" (what etcd's clients send).

KINE_E2E_DUMP=1 (with -s) prints the reference's normalised record of each gRPC script.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid

import grpc
import pytest

import harness
from cases import run_differential
from etcdgrpc import Client, Stream, to_dict
from normalize import assert_same, normalize, normalize_leases, normalize_text, pretty

RUN = uuid.uuid4().hex[:6]
ROOT_PW = "root-pw"

# Values that are each server's own: masked when non-zero (Status, Hash and Snapshot answers are
# recorded as "ok" or their error anyway).
OWN_FIELDS = {"dbSize", "dbSizeInUse", "leader", "raftIndex", "raftTerm", "raftAppliedIndex",
              "hash", "hash_revision", "remaining_bytes", "blob"}


# =============================================================================================
# Servers and cleanup


@pytest.fixture(scope="module")
def pair(server_factory):
    ref = server_factory.etcd(f"auth-etcd-{RUN}")
    tgt = server_factory.target(f"auth-{RUN}")
    return ref, tgt


@pytest.fixture(scope="module")
def aclients(pair):
    cls = [Client(s.endpoint) for s in pair]
    yield cls
    for c in cls:
        c.close()


def reset_auth(client: Client) -> list[str]:
    """Auth disabled, no users, no roles (what a fresh server has). Returns what went wrong."""
    pb = client.pb
    problems = []
    st, err = client.call(client.auth.AuthStatus, pb.AuthStatusRequest(), token="")
    if err is not None or st.enabled:
        tok, err = client.call(client.auth.Authenticate, pb.AuthenticateRequest(name="root", password=ROOT_PW),
                               token="")
        if err is not None:
            problems.append(f"root login: {err}")
        else:
            _, err = client.call(client.auth.AuthDisable, pb.AuthDisableRequest(), token=tok.token)
            if err is not None:
                problems.append(f"AuthDisable: {err}")
    users, err = client.call(client.auth.UserList, pb.AuthUserListRequest(), token="")
    for u in users.users if users else []:
        client.call(client.auth.UserDelete, pb.AuthUserDeleteRequest(name=u), token="")
    roles, err = client.call(client.auth.RoleList, pb.AuthRoleListRequest(), token="")
    for r in roles.roles if roles else []:
        client.call(client.auth.RoleDelete, pb.AuthRoleDeleteRequest(role=r), token="")
    return problems


@pytest.fixture(autouse=True)
def _clean(pair, aclients):
    yield
    for s in pair:
        if not s.alive():
            pytest.fail(f"{s.name} died during this test (exit {s.proc.returncode}):\n{s.log_tail()}")
    ref_problems = reset_auth(aclients[0])
    reset_auth(aclients[1])  # a target that cannot be reset fails the next test by itself
    if ref_problems:
        pytest.fail(f"cleanup after the test failed on the reference: {ref_problems}")


# =============================================================================================
# gRPC scripts


class ACtx:
    """One script on one server: every call recorded with who made it."""

    def __init__(self, server, client: Client, name: str):
        self.server = server
        self.cl = client
        self.pb = client.pb
        self.authpb = client.authpb
        self.prefix = f"/e2e-auth/{RUN}/{name}/".encode()
        st, _ = client.call(client.maintenance.Status, self.pb.StatusRequest(), token="")
        self.base = st.header.revision if st else 0
        ast, _ = client.call(client.auth.AuthStatus, self.pb.AuthStatusRequest(), token="")
        self.abase = ast.authRevision if ast else 0
        self.records: list = []
        self.tokens: dict[str, str] = {}
        self.streams: list[Stream] = []
        self.shortfalls: list[str] = []
        self.leases: list[int] = []

    # keys
    def k(self, name="") -> bytes:
        return self.prefix + (name.encode() if isinstance(name, str) else name)

    def end(self, key: bytes) -> bytes:
        p = bytearray(key)
        while p and p[-1] == 0xFF:
            p.pop()
        p[-1] += 1
        return bytes(p)

    # recording
    def note(self, label, value):
        self.records.append({"op": label, "value": value})

    def token_of(self, as_):
        if as_ is None:
            return ""
        if as_.startswith("token:"):
            return as_[len("token:"):]
        return self.tokens.get(as_, "no-token-for-" + as_)

    def call(self, label, method, req, as_=None, keep=None):
        resp, err = self.cl.call(method, req, token=self.token_of(as_))
        rec = {"error": err} if err is not None else (keep(resp) if keep else to_dict(resp))
        who = as_ if as_ is None or not as_.startswith("token:") else "(given token)"
        self.records.append({"op": label, "as": who, "request": to_dict(req), "response": rec})
        return resp

    def raw(self, label, method, req, metadata):
        """A call with metadata as given (e.g. an empty token, another key)."""
        try:
            res = to_dict(method(req, timeout=self.cl.timeout, metadata=metadata))
        except grpc.RpcError as e:
            res = {"error": {"code": e.code().name, "message": e.details()}}
        self.records.append({"op": label, "response": res})

    def ok(self, label, method, req, as_=None):
        """Only whether the call succeeded (or its error): for answers that are the server's own."""
        return self.call(label, method, req, as_, keep=lambda r: "ok")

    # auth
    def login(self, user, password, label="Authenticate"):
        r = self.call(label, self.cl.auth.Authenticate, self.pb.AuthenticateRequest(name=user, password=password))
        if r is not None:
            self.tokens[user] = r.token
        return r

    def arev(self, label="AuthStatus", as_=None):
        return self.call(label, self.cl.auth.AuthStatus, self.pb.AuthStatusRequest(), as_)

    def user_add(self, name, password="", no_password=False, as_=None):
        opts = self.authpb.UserAddOptions(no_password=True) if no_password else None
        return self.call("UserAdd", self.cl.auth.UserAdd,
                         self.pb.AuthUserAddRequest(name=name, password=password, options=opts), as_)

    def user_get(self, name, as_=None):
        return self.call("UserGet", self.cl.auth.UserGet, self.pb.AuthUserGetRequest(name=name), as_)

    def user_list(self, as_=None):
        return self.call("UserList", self.cl.auth.UserList, self.pb.AuthUserListRequest(), as_)

    def user_delete(self, name, as_=None):
        return self.call("UserDelete", self.cl.auth.UserDelete, self.pb.AuthUserDeleteRequest(name=name), as_)

    def user_passwd(self, name, password, as_=None):
        return self.call("UserChangePassword", self.cl.auth.UserChangePassword,
                         self.pb.AuthUserChangePasswordRequest(name=name, password=password), as_)

    def grant_role(self, user, role, as_=None):
        return self.call("UserGrantRole", self.cl.auth.UserGrantRole,
                         self.pb.AuthUserGrantRoleRequest(user=user, role=role), as_)

    def revoke_role(self, user, role, as_=None):
        return self.call("UserRevokeRole", self.cl.auth.UserRevokeRole,
                         self.pb.AuthUserRevokeRoleRequest(name=user, role=role), as_)

    def role_add(self, name, as_=None):
        return self.call("RoleAdd", self.cl.auth.RoleAdd, self.pb.AuthRoleAddRequest(name=name), as_)

    def role_get(self, name, as_=None):
        return self.call("RoleGet", self.cl.auth.RoleGet, self.pb.AuthRoleGetRequest(role=name), as_)

    def role_list(self, as_=None):
        return self.call("RoleList", self.cl.auth.RoleList, self.pb.AuthRoleListRequest(), as_)

    def role_delete(self, name, as_=None):
        return self.call("RoleDelete", self.cl.auth.RoleDelete, self.pb.AuthRoleDeleteRequest(role=name), as_)

    def perm(self, role, ptype, key, range_end=b"", as_=None, label="RoleGrantPermission"):
        p = self.authpb.Permission(permType=self.authpb.Permission.Type.Value(ptype), key=key, range_end=range_end)
        return self.call(label, self.cl.auth.RoleGrantPermission,
                         self.pb.AuthRoleGrantPermissionRequest(name=role, perm=p), as_)

    def unperm(self, role, key, range_end=b"", as_=None):
        return self.call("RoleRevokePermission", self.cl.auth.RoleRevokePermission,
                         self.pb.AuthRoleRevokePermissionRequest(role=role, key=key, range_end=range_end), as_)

    def enable(self, as_=None):
        return self.call("AuthEnable", self.cl.auth.AuthEnable, self.pb.AuthEnableRequest(), as_)

    def disable(self, as_=None):
        return self.call("AuthDisable", self.cl.auth.AuthDisable, self.pb.AuthDisableRequest(), as_)

    def setup_root(self):
        self.user_add("root", ROOT_PW)
        self.grant_role("root", "root")

    # KV
    def range(self, key, range_end=b"", as_=None, label="Range", **kw):
        return self.call(label, self.cl.kv.Range, self.pb.RangeRequest(key=key, range_end=range_end, **kw), as_)

    def put(self, key, value=b"", as_=None, label="Put", **kw):
        return self.call(label, self.cl.kv.Put, self.pb.PutRequest(key=key, value=value, **kw), as_)

    def delete(self, key, range_end=b"", as_=None, label="DeleteRange", **kw):
        return self.call(label, self.cl.kv.DeleteRange,
                         self.pb.DeleteRangeRequest(key=key, range_end=range_end, **kw), as_)

    def op(self, req):
        pb = self.pb
        if isinstance(req, pb.RangeRequest):
            return pb.RequestOp(request_range=req)
        if isinstance(req, pb.PutRequest):
            return pb.RequestOp(request_put=req)
        if isinstance(req, pb.DeleteRangeRequest):
            return pb.RequestOp(request_delete_range=req)
        if isinstance(req, pb.TxnRequest):
            return pb.RequestOp(request_txn=req)
        raise TypeError(req)

    def TxnReq(self, compare=(), success=(), failure=()):
        return self.pb.TxnRequest(compare=list(compare), success=[self.op(x) for x in success],
                                  failure=[self.op(x) for x in failure])

    def txn(self, compare=(), success=(), failure=(), as_=None, label="Txn"):
        return self.call(label, self.cl.kv.Txn, self.TxnReq(compare, success, failure), as_)

    def cmp_value(self, key, value, result="EQUAL", range_end=b""):
        pb = self.pb
        return pb.Compare(key=key, range_end=range_end, target=pb.Compare.CompareTarget.Value("VALUE"),
                          result=pb.Compare.CompareResult.Value(result), value=value)

    def R(self, key, range_end=b"", **kw):
        return self.pb.RangeRequest(key=key, range_end=range_end, **kw)

    def P(self, key, value=b"", **kw):
        return self.pb.PutRequest(key=key, value=value, **kw)

    def D(self, key, range_end=b"", **kw):
        return self.pb.DeleteRangeRequest(key=key, range_end=range_end, **kw)

    # leases
    def grant(self, ttl, as_=None):
        r = self.call("LeaseGrant", self.cl.lease.LeaseGrant, self.pb.LeaseGrantRequest(TTL=ttl), as_,
                      keep=lambda r: {"header": to_dict(r.header), "ID": r.ID, "TTL": r.TTL, "error": r.error})
        if r is not None:
            self.leases.append(r.ID)
        return r

    # streams
    def watch(self, as_=None) -> Stream:
        s = Stream(self.cl.watch.Watch, metadata=self.cl.metadata(self.token_of(as_)))
        self.streams.append(s)
        return s

    def watch_create(self, s: Stream, label, key, range_end=b"", **kw):
        req = self.pb.WatchRequest(create_request=self.pb.WatchCreateRequest(key=key, range_end=range_end, **kw))
        self.records.append({"op": f"{label} create", "request": to_dict(req.create_request)})
        s.send(req)

    def expect(self, s: Stream, n, label, timeout=5.0):
        got = s.take(n, timeout)
        if len(got) < n:
            self.shortfalls.append(f"{label}: expected {n} responses, got {len(got)}")
        self.records.append({"op": f"{label} responses", "responses": [to_dict(m) for m in got]})
        return got

    def quiet(self, s: Stream, label, quiet=0.8):
        """Every further response until the stream has been quiet for `quiet` seconds, and
        whether the server ended it."""
        rest = s.drain(quiet)
        rec = {"op": f"{label} further responses", "responses": [to_dict(m) for m in rest]}
        if s.closed:
            rec["stream ended by the server"] = s.error or "OK"
        self.records.append(rec)
        return rest

    def finish(self):
        for s in self.streams:
            s.close()
        for lid in self.leases:
            self.cl.call(self.cl.lease.LeaseRevoke, self.pb.LeaseRevokeRequest(ID=lid),
                         token=self.tokens.get("root", ""))


def _mask(obj, c: ACtx):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "token" and isinstance(v, str) and v:
                out[k] = "<token>"
            elif k == "authRevision" and isinstance(v, int):
                out[k] = f"arev{v - c.abase:+d}"
            elif k in OWN_FIELDS and v:
                out[k] = "<own>"
            else:
                out[k] = _mask(v, c)
        return out
    if isinstance(obj, list):
        return [_mask(x, c) for x in obj]
    return obj


def normalized(c: ACtx):
    return normalize_leases(_mask(normalize(c.records, c.base), c), {})


def run_script(pair, aclients, fn, name: str):
    """fn(ctx) on both servers at once; the normalised records compared."""
    ctxs = [ACtx(s, cl, name) for s, cl in zip(pair, aclients)]
    return run_differential(pair, ctxs, fn, name, normalized, "script recorded nothing")


# ---------------------------------------------------------------------------------------------


def test_grpc_users_and_roles(pair, aclients):
    """User and role management with auth off, then the root checks of AuthEnable and what
    a non-root user may manage once auth is on. authRevision after every step."""

    def script(c: ACtx):
        c.arev("AuthStatus at start")
        c.call("Authenticate while auth is disabled", c.cl.auth.Authenticate,
               c.pb.AuthenticateRequest(name="nobody", password="x"))
        # roles
        for r in ("r-b", "r-a", "r-c"):
            c.role_add(r)
            c.arev()
        c.role_add("r-a")                                   # already exists
        c.role_add("")                                      # empty name
        c.arev("AuthStatus after refused role adds")
        c.role_list()
        # permissions of r-a: kept sorted by key; one entry per (key, range_end)
        c.perm("r-a", "READ", c.k("m"))
        c.perm("r-a", "WRITE", c.k("a"), c.k("c"))
        c.perm("r-a", "READWRITE", c.k("a"))                # same key, no range end: a second entry
        c.perm("r-a", "READ", c.k("z"), b"\x00")            # from key
        c.perm("r-a", "READ", c.k("a"), c.k("c"))           # same key and range end: type replaced
        c.perm("r-a", "READ", c.k("a"), c.k("b"))           # same key, another range end
        c.perm("r-a", "READWRITE", b"", b"\x00")           # everything
        c.arev()
        c.role_get("r-a")
        c.perm("missing", "READ", c.k("x"))
        c.perm("r-b", "WRITE", c.k("y"), c.k("x"), label="RoleGrantPermission of an empty range (end < key)")
        c.role_get("r-b")
        c.role_get("missing")
        c.role_get("")
        c.unperm("r-a", c.k("m"))
        c.unperm("r-a", c.k("m"))                           # not granted any more
        c.unperm("r-a", c.k("a"))                           # only the entry without a range end
        c.unperm("r-a", c.k("a"), c.k("zz"))                # no such range end
        c.unperm("missing", c.k("a"))
        c.arev()
        c.role_get("r-a")
        # users
        c.user_add("u-b", "pw-b")
        c.user_add("u-a", "pw-a")
        c.user_add("u-c", no_password=True)
        c.user_add("u-e", "")                               # empty password, no option
        c.user_add("u-a", "again")                          # already exists
        c.user_add("", "x")                                 # empty name
        c.arev()
        c.user_list()
        c.grant_role("u-a", "r-c")
        c.grant_role("u-a", "r-a")
        c.grant_role("u-a", "r-b")
        c.arev("AuthStatus after three grants")
        c.grant_role("u-a", "r-a")                          # already granted
        c.arev("AuthStatus after a repeated grant")
        c.grant_role("u-a", "missing")
        c.grant_role("missing", "r-a")
        c.grant_role("u-b", "root")                         # the root role need not exist
        c.arev()
        c.user_get("u-a")
        c.user_get("u-b")
        c.user_get("u-c")
        c.user_get("missing")
        c.user_get("")
        c.revoke_role("u-a", "r-b")
        c.revoke_role("u-a", "r-b")                         # not granted any more
        c.revoke_role("missing", "r-a")
        c.revoke_role("u-a", "missing")
        c.arev()
        c.user_get("u-a")
        c.role_delete("r-a")                                # taken from its users too
        c.role_delete("r-a")
        c.arev()
        c.user_get("u-a")
        c.role_list()
        c.user_passwd("u-a", "pw-a2")
        c.user_passwd("missing", "x")
        c.user_passwd("u-c", "now-with-password")
        c.arev()
        c.user_delete("u-b")
        c.user_delete("u-b")
        c.user_delete("")
        c.arev()
        c.user_list()
        c.role_list()
        # enabling: the root checks
        c.enable()                                          # no root user
        c.user_add("root", ROOT_PW)
        c.enable()                                          # root has no root role
        c.grant_role("root", "root")                        # no role "root" yet: allowed
        c.arev()
        c.user_get("root")
        c.role_get("root")                                  # no such role yet
        c.role_list()
        c.enable()
        c.arev("AuthStatus without a token, auth on")
        c.login("root", ROOT_PW)
        c.arev("AuthStatus as root", as_="root")
        c.enable(as_="root")                                # already on
        c.enable()
        c.role_add("root", as_="root")
        c.role_get("root", as_="root")                      # all keys, read-write
        c.role_list(as_="root")
        c.perm("root", "READ", c.k("p"), as_="root")
        c.role_get("root", as_="root")
        c.role_delete("root", as_="root")                   # root's role while auth is on
        c.revoke_role("root", "root", as_="root")
        c.user_delete("root", as_="root")
        c.user_passwd("root", ROOT_PW, as_="root")          # same password: the token still goes
        c.user_list(as_="root")
        c.login("root", ROOT_PW)
        c.user_list()                                       # no token
        # a non-root user
        c.login("u-a", "pw-a")                              # the old password
        c.login("u-a", "pw-a2")
        for fn, args in ((c.user_list, ()), (c.role_list, ()), (c.user_get, ("u-a",)), (c.user_get, ("u-c",)),
                         (c.role_get, ("r-c",)), (c.role_get, ("r-b",)), (c.user_add, ("u-x", "x")),
                         (c.role_add, ("r-x",)), (c.grant_role, ("u-a", "r-b")),
                         (c.user_passwd, ("u-a", "pw-a3")), (c.arev, ()), (c.disable, ())):
            fn(*args, as_="u-a")
        c.arev("AuthStatus as root at the end", as_="root")
        c.disable(as_="root")
        c.disable()                                         # already off
        c.arev()
        c.user_get("root")
        c.role_get("root")

    run_script(pair, aclients, script, "users-and-roles")


def _kv_setup(c: ACtx):
    """root; role kv for alice: read r/, write w/, read-write rw/, read the key one, read [m/a, m/c)
    and [m/c, m/e) (two ranges that meet), read-write from f/ on; bob with no role; carol with a
    role of no permissions. Keys seeded as root; auth enabled; everyone logged in."""
    c.setup_root()
    c.role_add("kv")
    c.perm("kv", "READ", c.k("r/"), c.end(c.k("r/")))
    c.perm("kv", "WRITE", c.k("w/"), c.end(c.k("w/")))
    c.perm("kv", "READWRITE", c.k("rw/"), c.end(c.k("rw/")))
    c.perm("kv", "READ", c.k("one"))
    c.perm("kv", "READ", c.k("m/a"), c.k("m/c"))
    c.perm("kv", "READ", c.k("m/c"), c.k("m/e"))
    c.perm("kv", "READWRITE", c.k("\xfe"), b"\x00")      # from key: the rest of the keyspace
    c.role_add("empty")
    c.user_add("alice", "alice-pw")
    c.grant_role("alice", "kv")
    c.user_add("bob", "bob-pw")
    c.user_add("carol", "carol-pw")
    c.grant_role("carol", "empty")
    for k in ("r/1", "r/2", "w/1", "w/2", "rw/1", "one", "one2", "m/b", "m/d", "m/f", "secret", "\xfe1"):
        c.put(c.k(k), ("v-" + k).encode())
    c.enable()
    for u, pw in (("root", ROOT_PW), ("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")):
        c.login(u, pw)


def test_grpc_kv_permissions(pair, aclients):
    def script(c: ACtx):
        _kv_setup(c)
        k, end = c.k, c.end
        a = "alice"
        # Range
        c.range(k("r/1"), as_=a)
        c.range(k("r/"), end(k("r/")), as_=a)
        c.range(k("r/"), end(k("r/")), as_=a, count_only=True)
        c.range(k("r/1"), k("r/3"), as_=a, label="Range inside a prefix permission")
        c.range(k("w/1"), as_=a)
        c.range(k("rw/"), end(k("rw/")), as_=a)
        c.range(k("one"), as_=a)
        c.range(k("one"), k("one\x00"), as_=a, label="Range [one, one\\0) (only the key one)")
        c.range(k("one"), k("one2"), as_=a, label="Range [one, one2)")
        c.range(k("m/a"), k("m/e"), as_=a, label="Range over two permissions that meet")
        c.range(k("m/b"), k("m/d"), as_=a, label="Range across the seam")
        c.range(k("m/a"), k("m/f"), as_=a, label="Range beyond them")
        c.range(k("m/e"), as_=a)
        c.range(k(""), end(k("")), as_=a, label="Range of the whole prefix")
        c.range(k("secret"), as_=a)
        c.range(k("\xfe1"), as_=a)
        c.range(k("\xfe"), b"\x00", as_=a, label="Range from-key at the permission's key")
        c.range(k("\xff"), b"\x00", as_=a, label="Range from-key above it")
        c.range(k("\xfd"), b"\x00", as_=a, label="Range from-key below it")
        c.range(k("r/1"), as_="bob")
        c.range(k("r/1"), as_="carol")
        c.range(k("r/1"))
        c.range(k("r/1"), as_="token:not-a-token.1", label="Range with an invalid token")
        c.range(k(""), end(k("")), as_="root", keys_only=True)
        # Put
        c.put(k("w/1"), b"alice", as_=a)
        c.put(k("w/3"), b"alice", as_=a)
        c.put(k("w/1"), b"alice2", as_=a, prev_kv=True, label="Put with prev_kv where only writing is allowed")
        c.put(k("rw/1"), b"alice", as_=a, prev_kv=True)
        c.put(k("r/1"), b"alice", as_=a)
        c.put(k("secret"), b"alice", as_=a)
        c.put(k("\xfe2"), b"alice", as_=a)
        c.put(k("w/1"), b"bob", as_="bob")
        c.put(k("w/1"), b"anon")
        c.put(k("w/1"), as_=a, ignore_value=True, label="Put ignore_value")
        # DeleteRange
        c.delete(k("w/2"), as_=a)
        c.delete(k("w/3"), as_=a, prev_kv=True, label="DeleteRange with prev_kv where only writing is allowed")
        c.delete(k("w/"), end(k("w/")), as_=a)
        c.delete(k("rw/1"), as_=a, prev_kv=True)
        c.delete(k("r/2"), as_=a)
        c.delete(k("m/a"), k("m/e"), as_=a)
        c.delete(k("secret"), as_="bob")
        c.delete(k("secret"))
        # Txn
        cmp_r1 = c.cmp_value(k("r/1"), b"v-r/1")
        c.txn([cmp_r1], [c.P(k("w/4"), b"t")], [c.R(k("rw/"), end(k("rw/")))], as_=a,
              label="Txn allowed: read compare, write success, read failure")
        c.txn([cmp_r1], [c.P(k("w/5"), b"t")], [c.R(k("secret"))], as_=a,
              label="Txn whose failure branch (not taken) reads a key not readable")
        c.txn([cmp_r1], [c.P(k("w/5"), b"t")], [c.P(k("r/1"), b"x")], as_=a,
              label="Txn whose failure branch (not taken) writes a key not writable")
        c.txn([cmp_r1], [c.R(k("secret"))], [], as_=a, label="Txn whose success branch reads a key not readable")
        c.txn([c.cmp_value(k("secret"), b"x")], [], [], as_=a, label="Txn comparing a key not readable")
        c.txn([c.cmp_value(k("w/4"), b"t")], [], [], as_=a, label="Txn comparing a write-only key")
        c.txn([c.cmp_value(k("r/"), b"x", "NOT_EQUAL", end(k("r/")))], [c.R(k("r/1"))], [], as_=a,
              label="Txn comparing a range inside a permission")
        c.txn([c.cmp_value(k(""), b"x", "NOT_EQUAL", end(k("")))], [], [], as_=a,
              label="Txn comparing a range beyond the permissions")
        c.txn([cmp_r1], [c.D(k("w/4"), prev_kv=True)], [], as_=a, label="Txn delete with prev_kv, write-only key")
        inner_ok = c.TxnReq([cmp_r1], [c.P(k("rw/n"), b"nested")], [c.R(k("one"))])
        c.txn([cmp_r1], [inner_ok], [], as_=a, label="Txn nested, all allowed")
        c.txn([], [], [], as_="bob", label="Txn empty, user without roles")
        c.txn([], [], [], label="Txn empty, no token")
        c.txn([cmp_r1], [c.P(k("w/7"), b"t")], [], as_="bob")
        c.txn([c.cmp_value(k("secret"), b"x")], [c.P(k("secret"), b"root")], [c.R(k(""), end(k("")))], as_="root")
        # LeaseGrant and a few others need no permission on keys
        c.grant(60, as_="bob")
        c.grant(60)
        c.range(k(""), end(k("")), as_="root", label="Range everything at the end")

    run_script(pair, aclients, script, "kv-permissions")


def test_grpc_where_etcd_3_5_1_checks_less(pair, aclients):
    """Requests etcd 3.5.1 lets through although they touch keys the user may not read or write
    (the checks of the top-level requests are all above), and kine too:
      * a Txn Put with prev_kv needs only write permission (a plain Put with prev_kv needs read);
      * a Txn Put may attach a lease that holds keys the user cannot write (a plain Put may not);
      * LeaseTimeToLive with keys lists every key of the lease, readable or not.
    (Nested Txns, which etcd 3.5.1 does not check at all, are kine's deliberate difference:
    test_nested_txn_checked_at_every_level.)"""

    def script(c: ACtx):
        _kv_setup(c)
        k = c.k
        c.txn([], [c.P(k("w/1"), b"t", prev_kv=True)], [], as_="alice",
              label="Txn put with prev_kv of a write-only key")
        shared = c.grant(120, as_="alice")
        c.put(k("w/l1"), b"x", lease=shared.ID, as_="alice")
        c.put(k("secret/l1"), b"x", lease=shared.ID, as_="root")
        c.put(k("w/l2"), b"x", lease=shared.ID, as_="alice",
              label="Put attaching a lease that holds a key alice cannot write")
        c.txn([], [c.P(k("w/l3"), b"x", lease=shared.ID)], [], as_="alice",
              label="Txn put attaching that lease")
        c.call("LeaseTimeToLive with keys, alice", c.cl.lease.LeaseTimeToLive,
               c.pb.LeaseTimeToLiveRequest(ID=shared.ID, keys=True), as_="alice",
               keep=lambda r: {"ID": r.ID, "grantedTTL": r.grantedTTL, "keys": sorted(to_dict(r)["keys"])})
        c.call("LeaseTimeToLive with keys, bob", c.cl.lease.LeaseTimeToLive,
               c.pb.LeaseTimeToLiveRequest(ID=shared.ID, keys=True), as_="bob",
               keep=lambda r: {"ID": r.ID, "grantedTTL": r.grantedTTL, "keys": sorted(to_dict(r)["keys"])})
        c.range(k(""), c.end(k("")), as_="root", label="Range everything at the end")

    run_script(pair, aclients, script, "etcd-3.5.1-checks-less")


NESTED_TXNS = 8


def test_nested_txn_checked_at_every_level(pair, aclients):
    """etcd 3.5.1 checks a Txn's compares and both branches but nothing in a Txn nested in them:
    through one, a user without the permission (or without any role, or without a token) reads
    and writes any key. kine checks every level (docs/compatibility.md, "Auth: nested Txn"), so
    here the two servers are not compared with each other: etcd is shown to let each of these
    through, kine to refuse each with the error the same request unnested gets, and to have
    changed nothing."""

    def script(c: ACtx):
        _kv_setup(c)
        k, a = c.k, "alice"
        cmp_r1 = c.cmp_value(k("r/1"), b"v-r/1")
        c.txn([cmp_r1], [c.TxnReq([], [c.R(k("secret"))], [])], [], as_=a,
              label="Txn nested: the inner success branch reads a key not readable")
        c.txn([cmp_r1], [c.TxnReq([], [c.P(k("r/1"), b"nested")], [])], [], as_=a,
              label="Txn nested: the inner success branch writes a key not writable")
        c.txn([cmp_r1], [c.TxnReq([cmp_r1], [c.P(k("rw/n2"), b"nested")], [c.R(k("secret"))])], [], as_=a,
              label="Txn nested: the inner failure branch (not taken) reads a key not readable")
        c.txn([], [c.R(k("r/1"))], [c.TxnReq([], [c.R(k("secret"))], [])], as_=a,
              label="Txn nested in the failure branch (not taken), reading a key not readable")
        c.txn([], [c.TxnReq([c.cmp_value(k("secret"), b"v-secret")], [c.R(k("r/1"))], [])], [], as_=a,
              label="Txn nested: the inner compare on a key not readable")
        c.txn([], [c.TxnReq([], [c.R(k("secret"))], [])], [], as_="bob",
              label="Txn nested, a user without roles reads a key")
        c.txn([], [c.TxnReq([], [c.R(k("secret"))], [])], [], label="Txn nested, no token")
        c.txn([], [c.TxnReq([], [c.TxnReq([], [c.D(k("secret"), prev_kv=True)], [])], [])], [], as_=a,
              label="Txn nested twice: a delete with prev_kv of a key not writable")
        c.range(k(""), c.end(k("")), as_="root", label="Range everything at the end")

    ref, target = pair
    ctxs = [ACtx(s, cl, "nested-txn") for s, cl in zip(pair, aclients)]
    for c in ctxs:
        try:
            script(c)
        finally:
            c.finish()
    nested = lambda c: [r for r in c.records if r["op"].startswith("Txn nested")]  # noqa: E731
    etcd_answers, kine_answers = nested(ctxs[0]), nested(ctxs[1])
    assert len(etcd_answers) == len(kine_answers) == NESTED_TXNS
    for record in etcd_answers:
        assert "error" not in record["response"], f"{ref.name}: {record['op']}: {record['response']}"
    expected = {"code": "PERMISSION_DENIED", "message": "etcdserver: permission denied"}
    no_token = {"code": "INVALID_ARGUMENT", "message": "etcdserver: user name is empty"}
    for record in kine_answers:
        want = no_token if record["op"].endswith("no token") else expected
        assert record["response"].get("error") == want, f"{target.name}: {record['op']}: {record['response']}"
    # Nothing the refused Txns would have done happened on kine.
    prefix = ctxs[1].prefix.decode()
    final = {kv["key"][len(prefix):]: kv["value"] for kv in ctxs[1].records[-1]["response"]["kvs"]}
    assert final.get("r/1") == "v-r/1" and final.get("secret") == "v-secret" and "rw/n2" not in final, final


def test_grpc_watch_permissions(pair, aclients):
    """Watch creates are checked at create time; what happens to a watch whose user loses the
    permission, the role, or the user itself, while it is open."""

    def script(c: ACtx):
        _kv_setup(c)
        k, end = c.k, c.end
        # One stream of alice's with three watchers. (Denied creates go on streams of their own or
        # with a watch id of their own: etcd 3.5.1 answers a denied create with the request's
        # watch_id, 0 unless given, and its send loop then forgets the announced watcher 0 of that
        # stream, whose events are buffered for ever: an etcd bug not compared here.)
        wa = c.watch("alice")
        c.watch_create(wa, "alice r/", k("r/"), end(k("r/")))
        c.watch_create(wa, "alice m/a..m/e", k("m/a"), k("m/e"))
        c.watch_create(wa, "alice one", k("one"), prev_kv=True)
        c.expect(wa, 3, "alice: three creates")
        c.watch_create(wa, "alice secret, watch id 10", k("secret"), watch_id=10)
        c.expect(wa, 1, "alice secret, watch id 10")
        for label, key, range_end in (("alice secret", k("secret"), b""),
                                      ("alice whole prefix", k(""), end(k(""))),
                                      ("alice w/ (write only)", k("w/"), end(k("w/"))),
                                      ("alice m/a..m/f", k("m/a"), k("m/f"))):
            s = c.watch("alice")
            c.watch_create(s, label, key, range_end)
            c.expect(s, 1, label)
            c.quiet(s, label)
        wb = c.watch("bob")
        c.watch_create(wb, "bob r/", k("r/"), end(k("r/")))
        c.expect(wb, 1, "bob r/")
        c.watch_create(wb, "bob r/ again, watch id 3", k("r/"), end(k("r/")), watch_id=3)
        c.expect(wb, 1, "bob r/ again")
        wn = c.watch(None)
        c.watch_create(wn, "no token r/", k("r/"), end(k("r/")))
        c.expect(wn, 1, "no token r/")
        wi = c.watch("token:not-a-token.1")
        c.watch_create(wi, "invalid token r/", k("r/"), end(k("r/")))
        c.expect(wi, 1, "invalid token r/")
        c.quiet(wi, "invalid token")
        wr = c.watch("root")
        c.watch_create(wr, "root everything", k(""), end(k("")))
        c.expect(wr, 1, "root everything")

        c.put(k("r/1"), b"1", as_="root")
        c.put(k("m/b"), b"1", as_="root")
        c.put(k("one"), b"1", as_="root")
        c.expect(wa, 3, "alice: the three puts")
        c.expect(wr, 3, "root: the three puts")
        c.quiet(wa, "alice")
        # the permission on r/ revoked while the watch is open
        c.unperm("kv", k("r/"), end(k("r/")), as_="root")
        c.put(k("r/1"), b"2 (after the permission was revoked)", as_="root")
        c.expect(wr, 1, "root: put after revoke")
        c.quiet(wa, "alice after the permission on r/ was revoked")
        c.range(k("r/1"), as_="alice")
        ws = c.watch("alice")
        c.watch_create(ws, "alice r/ after revoke", k("r/"), end(k("r/")))
        c.quiet(ws, "alice r/ after revoke (new stream)")
        # the role taken from the user
        c.revoke_role("alice", "kv", as_="root")
        c.put(k("m/b"), b"2 (after the role was revoked)", as_="root")
        c.expect(wr, 1, "root: put after role revoke")
        c.quiet(wa, "alice after her role was revoked")
        # the user deleted
        c.user_delete("alice", as_="root")
        c.put(k("one"), b"2 (after the user was deleted)", as_="root")
        c.expect(wr, 1, "root: put after user delete")
        c.quiet(wa, "alice after she was deleted")
        c.watch_create(wa, "alice one on the old stream after she was deleted", k("one"), watch_id=11)
        c.quiet(wa, "alice new watcher on the old stream")
        wd = c.watch("alice")
        c.watch_create(wd, "alice one on a new stream after she was deleted", k("one"))
        c.quiet(wd, "alice new stream after delete")
        # auth disabled: the open streams
        c.disable(as_="root")
        c.put(k("r/1"), b"3 (auth disabled)")
        c.expect(wr, 1, "root: put with auth disabled")
        c.quiet(wa, "alice with auth disabled")
        c.quiet(wb, "bob with auth disabled")
        wb2 = c.watch("bob")
        c.watch_create(wb2, "bob r/ with auth disabled (stale token)", k("r/"), end(k("r/")))
        c.expect(wb2, 1, "bob r/ with auth disabled")

    run_script(pair, aclients, script, "watch-permissions")


def test_grpc_lease_permissions(pair, aclients):
    """LeaseRevoke needs write permission on every key attached; so does attaching a lease that
    holds keys the user cannot write."""

    def script(c: ACtx):
        _kv_setup(c)
        k = c.k
        mine = c.grant(120, as_="alice")
        c.put(k("w/l1"), b"x", lease=mine.ID, as_="alice")
        c.put(k("rw/l1"), b"x", lease=mine.ID, as_="alice")
        shared = c.grant(120, as_="alice")
        c.put(k("w/l2"), b"x", lease=shared.ID, as_="alice")
        c.put(k("secret/l2"), b"x", lease=shared.ID, as_="root")
        c.call("LeaseTimeToLive without keys, alice", c.cl.lease.LeaseTimeToLive,
               c.pb.LeaseTimeToLiveRequest(ID=shared.ID), as_="alice",
               keep=lambda r: {"ID": r.ID, "grantedTTL": r.grantedTTL, "keys": list(r.keys)})
        c.call("LeaseTimeToLive without keys, bob", c.cl.lease.LeaseTimeToLive,
               c.pb.LeaseTimeToLiveRequest(ID=shared.ID), as_="bob",
               keep=lambda r: {"ID": r.ID, "grantedTTL": r.grantedTTL, "keys": list(r.keys)})
        c.call("LeaseLeases, bob", c.cl.lease.LeaseLeases, c.pb.LeaseLeasesRequest(), as_="bob",
               keep=lambda r: {"header": to_dict(r.header)})
        c.put(k("w/l3"), b"x", lease=shared.ID, as_="alice",
              label="Put attaching a lease that holds a key alice cannot write")
        c.call("LeaseRevoke of a lease with a key alice cannot write", c.cl.lease.LeaseRevoke,
               c.pb.LeaseRevokeRequest(ID=shared.ID), as_="alice")
        c.call("LeaseRevoke of a lease with a key bob cannot write", c.cl.lease.LeaseRevoke,
               c.pb.LeaseRevokeRequest(ID=mine.ID), as_="bob")
        c.call("LeaseRevoke of alice's own lease", c.cl.lease.LeaseRevoke,
               c.pb.LeaseRevokeRequest(ID=mine.ID), as_="alice")
        empty = c.grant(120, as_="bob")
        c.call("LeaseRevoke of a lease without keys, bob", c.cl.lease.LeaseRevoke,
               c.pb.LeaseRevokeRequest(ID=empty.ID), as_="bob")
        c.call("LeaseRevoke, no token", c.cl.lease.LeaseRevoke, c.pb.LeaseRevokeRequest(ID=shared.ID))
        c.call("LeaseRevoke of an unknown lease, bob", c.cl.lease.LeaseRevoke,
               c.pb.LeaseRevokeRequest(ID=0x7E5800000042), as_="bob")
        ka = Stream(c.cl.lease.LeaseKeepAlive, metadata=c.cl.metadata(c.token_of("bob")))
        c.streams.append(ka)
        ka.send(c.pb.LeaseKeepAliveRequest(ID=shared.ID))
        got = ka.take(1, 5.0)
        c.records.append({"op": "LeaseKeepAlive by bob of a lease with keys he cannot write",
                          "responses": [{"ID": m.ID, "TTL": m.TTL} for m in got], "stream error": ka.error})
        c.call("LeaseRevoke by root", c.cl.lease.LeaseRevoke, c.pb.LeaseRevokeRequest(ID=shared.ID), as_="root")
        c.range(k(""), c.end(k("")), as_="root", keys_only=True)

    run_script(pair, aclients, script, "lease-permissions")


def test_grpc_maintenance_and_cluster_as_non_root(pair, aclients):
    def script(c: ACtx):
        _kv_setup(c)
        pb, m = c.pb, c.cl.maintenance
        st, _ = c.cl.call(m.Status, pb.StatusRequest(), token="")
        for who in ("alice", "bob", None, "root"):
            c.ok("Status", m.Status, pb.StatusRequest(), as_=who)
            c.call("Alarm GET", m.Alarm, pb.AlarmRequest(action=pb.AlarmRequest.AlarmAction.Value("GET")), as_=who)
            c.ok("Hash", m.Hash, pb.HashRequest(), as_=who)
            c.ok("HashKV", m.HashKV, pb.HashKVRequest(), as_=who)
            c.ok("Defragment", m.Defragment, pb.DefragmentRequest(), as_=who)
            c.call("MemberList", c.cl.cluster.MemberList, pb.MemberListRequest(), as_=who,
                   keep=lambda r: {"header": to_dict(r.header), "members": len(r.members)})
            c.call("Compact", c.cl.kv.Compact, pb.CompactionRequest(revision=st.header.revision), as_=who)
            # Snapshot streams: the first message, or the error
            call = m.Snapshot(pb.SnapshotRequest(), timeout=10, metadata=c.cl.metadata(c.token_of(who)))
            try:
                first = next(iter(call))
                rec = {"first message": {"has blob": bool(first.blob)}}
            except grpc.RpcError as e:
                rec = {"error": {"code": e.code().name, "message": e.details()}}
            finally:
                call.cancel()
            c.records.append({"op": "Snapshot", "as": who, "response": rec})
        c.call("Alarm ACTIVATE, alice", m.Alarm, pb.AlarmRequest(
            action=pb.AlarmRequest.AlarmAction.Value("ACTIVATE"), memberID=77,
            alarm=pb.AlarmType.Value("NOSPACE")), as_="alice")
        c.call("Alarm DEACTIVATE, alice", m.Alarm, pb.AlarmRequest(
            action=pb.AlarmRequest.AlarmAction.Value("DEACTIVATE"), memberID=77,
            alarm=pb.AlarmType.Value("NOSPACE")), as_="alice")
        c.call("Alarm GET, root", m.Alarm, pb.AlarmRequest(action=pb.AlarmRequest.AlarmAction.Value("GET")),
               as_="root")
        c.call("Alarm DEACTIVATE, root", m.Alarm, pb.AlarmRequest(
            action=pb.AlarmRequest.AlarmAction.Value("DEACTIVATE"), memberID=77,
            alarm=pb.AlarmType.Value("NOSPACE")), as_="root")

    run_script(pair, aclients, script, "maintenance-non-root")


def _unknown_fields(msg) -> list:
    """Field numbers the generated classes do not know, anywhere in msg (e.g. a header field a
    newer etcd adds)."""
    from google.protobuf import unknown_fields

    out = [f.field_number for f in unknown_fields.UnknownFieldSet(msg)]
    for f, v in msg.ListFields():
        if f.message_type is not None and f.label != f.LABEL_REPEATED:
            out += _unknown_fields(v)
    return out


def test_grpc_tokens(pair, aclients):
    """Tokens: two logins, a changed password, a deleted (and re-added) user, auth disabled and
    enabled again, an invalid token, the metadata key etcd's gateway uses, users without a
    password; the header etcd sends with auth answers."""

    def script(c: ACtx):
        _kv_setup(c)
        k = c.k
        first = c.token_of("alice")
        c.login("alice", "alice-pw", "Authenticate alice again")
        c.note("a second login gives another token", c.token_of("alice") != first)
        c.range(k("r/1"), as_="token:" + first, label="Range with alice's first token")
        c.range(k("r/1"), as_="alice", label="Range with alice's second token")
        # the response headers: no field beyond the four known ones
        for label, method, req, who in (
                ("Range", c.cl.kv.Range, c.R(k("r/1")), "alice"),
                ("AuthStatus", c.cl.auth.AuthStatus, c.pb.AuthStatusRequest(), "root"),
                ("UserList", c.cl.auth.UserList, c.pb.AuthUserListRequest(), "root"),
                ("Authenticate", c.cl.auth.Authenticate, c.pb.AuthenticateRequest(name="bob", password="bob-pw"), None)):
            resp, err = c.cl.call(method, req, token=c.token_of(who))
            c.note(f"{label}: fields unknown to the protos", err or _unknown_fields(resp))
        # the metadata key "authorization" (what the gateway passes on) instead of "token"
        tok = c.token_of("alice")
        rng = c.cl.kv.Range
        c.raw("Range, token as metadata 'authorization'", rng, c.R(k("r/1")), [("authorization", tok)])
        c.raw("Range, metadata authorization: Bearer <token>", rng, c.R(k("r/1")), [("authorization", "Bearer " + tok)])
        c.raw("Range, metadata 'token' (invalid) and 'authorization' (valid)", rng, c.R(k("r/1")),
              [("token", "abcdefghijklmnop.1"), ("authorization", tok)])
        c.raw("Range, metadata 'token' (valid) and 'authorization' (invalid)", rng, c.R(k("r/1")),
              [("token", tok), ("authorization", "abcdefghijklmnop.1")])
        c.raw("Range, an empty token", rng, c.R(k("r/1")), [("token", "")])
        c.raw("Range, two tokens (invalid first)", rng, c.R(k("r/1")), [("token", "abcdefghijklmnop.1"), ("token", tok)])
        # invalid tokens, on every kind of service
        bad = "token:abcdefghijklmnop.1"
        c.range(k("r/1"), as_=bad)
        c.put(k("w/1"), b"x", as_=bad)
        c.user_list(as_=bad)
        c.arev(as_=bad)
        c.ok("Status with an invalid token", c.cl.maintenance.Status, c.pb.StatusRequest(), as_=bad)
        c.call("LeaseGrant with an invalid token", c.cl.lease.LeaseGrant, c.pb.LeaseGrantRequest(TTL=60), as_=bad)
        c.call("Authenticate with an invalid token", c.cl.auth.Authenticate,
               c.pb.AuthenticateRequest(name="bob", password="bob-pw"), as_=bad)
        # a changed password
        c.user_passwd("alice", "alice-pw2", as_="root")
        c.range(k("r/1"), as_="alice", label="Range with alice's token after her password changed")
        c.login("alice", "alice-pw")
        c.login("alice", "alice-pw2")
        c.range(k("r/1"), as_="alice")
        # a deleted user
        old = c.token_of("alice")
        c.user_delete("alice", as_="root")
        c.range(k("r/1"), as_="alice", label="Range with the token of a deleted user")
        c.put(k("w/1"), b"x", as_="alice", label="Put with the token of a deleted user")
        c.user_list(as_="alice")
        c.login("alice", "alice-pw2", "Authenticate a deleted user")
        c.user_add("alice", "alice-pw3", as_="root")
        c.grant_role("alice", "kv", as_="root")
        c.range(k("r/1"), as_="token:" + old, label="Range with the old token of a re-added user")
        c.login("alice", "alice-pw3")
        c.range(k("r/1"), as_="alice")
        # a revoked role: the token stays valid
        c.revoke_role("alice", "kv", as_="root")
        c.range(k("r/1"), as_="alice", label="Range after the role was revoked")
        c.grant_role("alice", "kv", as_="root")
        c.range(k("r/1"), as_="alice", label="Range after the role was granted again")
        # no password
        c.user_add("nopw", no_password=True, as_="root")
        c.user_add("emptypw", "", as_="root")
        c.login("nopw", "")
        c.login("nopw", "x")
        c.login("emptypw", "")
        c.login("emptypw", "x")
        c.user_get("nopw", as_="root")
        c.login("nobody", "x")
        c.login("", "")
        c.login("root", "")
        # auth disabled, then enabled again: the tokens from before
        c.arev(as_="root")
        c.disable(as_="root")
        c.arev()
        c.range(k("r/1"), as_="alice", label="Range with a token, auth disabled")
        c.range(k("r/1"), as_=bad, label="Range with an invalid token, auth disabled")
        c.user_list(as_="alice")
        c.enable()
        c.range(k("r/1"), as_="alice", label="Range with a token from before auth was disabled")
        c.login("alice", "alice-pw3")
        c.range(k("r/1"), as_="alice")

    run_script(pair, aclients, script, "tokens")


# =============================================================================================
# etcdctl


class Ctl:
    """One etcdctl command on both servers; outputs normalised and compared at once."""

    def __init__(self, pair, aclients, name: str):
        self.pair = pair
        self.prefix = f"/e2e-auth-ctl/{RUN}/{name}/"
        self.base, self.abase = {}, {}
        for s, c in zip(pair, aclients):
            st, _ = c.call(c.maintenance.Status, c.pb.StatusRequest(), token="")
            ast, _ = c.call(c.auth.AuthStatus, c.pb.AuthStatusRequest(), token="")
            self.base[s.name] = st.header.revision if st else 0
            self.abase[s.name] = ast.authRevision if ast else 0

    def k(self, name=""):
        return self.prefix + name

    def norm(self, s, r):
        base, abase = self.base[s.name], self.abase[s.name]
        err = [normalize_text(line, s.endpoint, base) for line in r.stderr.splitlines() if line.startswith("Error")]
        out = r.stdout
        try:
            obj = json.loads(out) if out.lstrip().startswith("{") else None
        except json.JSONDecodeError:
            obj = None
        if obj is not None:
            obj = _mask_json(normalize(obj, base), abase)
            return {"rc": r.returncode, "json": obj, "errors": err}
        out = normalize_text(out, s.endpoint, base)
        out = re.sub(r"(AuthRevision: ?)(\d+)", lambda m: f"{m.group(1)}arev{int(m.group(2)) - abase:+d}", out)
        return {"rc": r.returncode, "stdout": out, "errors": err}

    def same(self, *args, input=None, expect_rc: int | str | None = 0):
        results = []
        for s in self.pair:
            r = harness.etcdctl(s, *args, input=input)
            results.append(self.norm(s, r))
        what = "etcdctl " + " ".join(args)
        if os.environ.get("KINE_E2E_DUMP") == "1":
            print(f"--- {what}\n{pretty(results[0])}")
        assert_same(results[0], results[1], what, self.pair[0].name, self.pair[1].name)
        if expect_rc == "fail":
            assert results[0]["rc"] != 0, f"{what}: the reference succeeded: {results[0]}"
        elif expect_rc is not None:
            assert results[0]["rc"] == expect_rc, f"{what}: reference exited {results[0]['rc']}: {results[0]}"
        return results[0]


def _mask_json(obj, abase):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "authRevision" and isinstance(v, int):
                out[k] = f"arev{v - abase:+d}"
            elif k == "token" and v:
                out[k] = "<token>"
            elif k in ("key", "range_end") and isinstance(v, str):
                try:
                    out[k] = base64.b64decode(v).decode("utf-8", "backslashreplace")
                except Exception:
                    out[k] = v
            else:
                out[k] = _mask_json(v, abase)
        return out
    if isinstance(obj, list):
        return [_mask_json(x, abase) for x in obj]
    return obj


def test_etcdctl_users_and_roles(pair, aclients):
    p = Ctl(pair, aclients, "users-roles")
    k = p.k
    p.same("role", "add", "r1")
    p.same("role", "add", "r1", expect_rc="fail")
    p.same("role", "add", "r2")
    p.same("role", "list")
    p.same("role", "list", "-w", "json")
    p.same("role", "grant-permission", "r1", "readwrite", k("p/"), "--prefix")
    p.same("role", "grant-permission", "r1", "read", k("a"), k("c"))
    p.same("role", "grant-permission", "r1", "write", k("z"), "--from-key")
    p.same("role", "grant-permission", "r1", "read", k("single"))
    p.same("role", "grant-permission", "r1", "write", k("single"))
    p.same("role", "grant-permission", "r1", "bogus", k("x"), expect_rc=None)
    p.same("role", "grant-permission", "missing", "read", k("x"), expect_rc="fail")
    p.same("role", "grant-permission", "r1", "read", k("x"), "--prefix", "--from-key", expect_rc=None)
    p.same("role", "get", "r1")
    p.same("role", "get", "r1", "-w", "json")
    p.same("role", "get", "r2")
    p.same("role", "get", "missing", expect_rc="fail")
    p.same("role", "revoke-permission", "r1", k("single"))
    p.same("role", "revoke-permission", "r1", k("single"), expect_rc="fail")
    p.same("role", "revoke-permission", "r1", k("p/"), "--prefix")
    p.same("role", "revoke-permission", "r1", k("z"), "--from-key")
    p.same("role", "revoke-permission", "r1", k("a"), k("c"))
    p.same("role", "revoke-permission", "missing", k("a"), expect_rc="fail")
    p.same("role", "get", "r1")
    p.same("user", "add", "alice:pw1")
    p.same("user", "add", "alice:pw1", expect_rc="fail")
    p.same("user", "add", "bob", "--new-user-password=pw2")
    p.same("user", "add", "carol", "--no-password")
    p.same("user", "add", "dave", "--interactive=false", input="pw4\n")
    p.same("user", "list")
    p.same("user", "list", "-w", "json")
    p.same("user", "grant-role", "alice", "r2")
    p.same("user", "grant-role", "alice", "r1")
    p.same("user", "grant-role", "alice", "missing", expect_rc="fail")
    p.same("user", "grant-role", "missing", "r1", expect_rc="fail")
    p.same("user", "get", "alice")
    p.same("user", "get", "alice", "--detail")
    p.same("user", "get", "alice", "-w", "json")
    p.same("user", "get", "carol")
    p.same("user", "get", "missing", expect_rc="fail")
    p.same("user", "revoke-role", "alice", "r2")
    p.same("user", "revoke-role", "alice", "r2", expect_rc="fail")
    p.same("user", "passwd", "alice", "--interactive=false", input="pw1b\n")
    p.same("user", "passwd", "missing", "--interactive=false", input="x\n", expect_rc="fail")
    p.same("user", "delete", "bob")
    p.same("user", "delete", "bob", expect_rc="fail")
    p.same("role", "delete", "r2")
    p.same("role", "delete", "r2", expect_rc="fail")
    p.same("user", "list")
    p.same("role", "list")
    p.same("auth", "status")
    p.same("auth", "status", "-w", "json")


def test_etcdctl_auth_enabled(pair, aclients):
    p = Ctl(pair, aclients, "enabled")
    k = p.k
    root = f"--user=root:{ROOT_PW}"
    p.same("auth", "enable", expect_rc="fail")                  # no root user
    p.same("user", "add", f"root:{ROOT_PW}")
    # root without the root role: etcdctl adds the role, grants it to root and enables
    p.same("auth", "enable")
    p.same("role", "list", root)
    p.same("user", "get", "root", root)
    p.same("auth", "enable", expect_rc=None)               # again, no user
    p.same("auth", "enable", root, expect_rc=None)         # again, as root
    p.same("auth", "status", expect_rc="fail")                  # no user given
    p.same("auth", "status", root)
    p.same("auth", "status", root, "-w", "json")
    p.same("put", k("a"), "v", expect_rc="fail")                # "user name is empty"
    p.same("put", k("a"), "v", "--user=root:wrong", expect_rc="fail")
    p.same("put", k("a"), "v", "--user=nobody:x", expect_rc="fail")
    p.same("put", k("a"), "v", "--user=root", f"--password={ROOT_PW}")
    p.same("role", "add", "rw", root)
    p.same("role", "grant-permission", "rw", "readwrite", k("rw/"), "--prefix", root)
    p.same("role", "grant-permission", "rw", "read", k("ro/"), "--prefix", root)
    p.same("role", "grant-permission", "rw", "write", k("wo"), root)
    p.same("user", "add", "alice:apw", root)
    p.same("user", "grant-role", "alice", "rw", root)
    p.same("user", "add", "nobody:npw", root)
    p.same("user", "add", "carol", "--no-password", root)
    alice = "--user=alice:apw"
    p.same("put", k("ro/x"), "root", root)
    p.same("put", k("rw/x"), "alice", alice)
    p.same("put", k("wo"), "alice", alice)
    p.same("put", k("ro/x"), "alice", alice, expect_rc="fail")
    p.same("put", k("wo"), "alice", "--prev-kv", alice, expect_rc="fail")
    p.same("get", k("rw/x"), alice)
    p.same("get", k("rw/"), "--prefix", "-w", "json", alice)
    p.same("get", k("ro/"), "--prefix", alice)
    p.same("get", k("wo"), alice, expect_rc="fail")
    p.same("get", k(""), "--prefix", alice, expect_rc="fail")
    p.same("get", k("a"), alice, expect_rc="fail")
    p.same("del", k("wo"), alice)
    p.same("del", k("ro/x"), alice, expect_rc="fail")
    p.same("del", k("rw/"), "--prefix", "--prev-kv", alice)
    txn_ok = (f'value("{k("ro/x")}") = "root"\n\nput {k("rw/t")} yes\n\nget {k("ro/x")}\n\n')
    txn_bad = (f'value("{k("ro/x")}") = "root"\n\nput {k("rw/t")} yes\n\nget {k("a")}\n\n')
    p.same("txn", alice, input=txn_ok)
    p.same("txn", alice, input=txn_bad, expect_rc="fail")
    p.same("txn", "-w", "json", alice, input=txn_ok)
    p.same("get", k("rw/t"), "--user=nobody:npw", expect_rc="fail")
    p.same("put", k("rw/t"), "x", "--user=nobody:npw", expect_rc="fail")
    p.same("get", k("rw/t"), "--user=carol:x", expect_rc="fail")
    p.same("user", "list", alice, expect_rc="fail")
    p.same("user", "get", "alice", alice, expect_rc=None)
    p.same("role", "get", "rw", alice, expect_rc=None)
    p.same("role", "get", "root", root)
    p.same("user", "get", "root", "--detail", root)
    p.same("role", "delete", "root", root, expect_rc="fail")
    p.same("user", "revoke-role", "root", "root", root, expect_rc="fail")
    p.same("user", "delete", "root", root, expect_rc="fail")
    p.same("user", "delete", "alice", root)
    p.same("get", k("rw/t"), alice, expect_rc="fail")
    p.same("auth", "disable", "--user=nobody:npw", expect_rc="fail")
    p.same("auth", "disable", expect_rc="fail")
    p.same("auth", "disable", root)
    p.same("auth", "status")
    p.same("get", k(""), "--prefix", "--keys-only")
    p.same("get", k("rw/t"), "--user=nobody:npw")      # a user given while auth is off
    p.same("get", k("rw/t"), "--user=nobody:wrong", expect_rc=None)


# =============================================================================================
# The gateway


def test_gateway_token(pair, aclients):
    """The gateway takes the token in the `Authorization` header (grpc-gateway passes it on as
    the metadata "authorization", which etcd reads when "token" is absent), or as
    `Grpc-Metadata-Token`."""
    from test_gateway import Gateway, normalized as gw_normalized

    def b64(t):
        return base64.b64encode(t.encode()).decode()

    answers = []
    for s, c in zip(pair, aclients):
        ctx = ACtx(s, c, "gateway")
        k = lambda n: ctx.k(n).decode()  # noqa: E731
        ctx.setup_root()
        ctx.role_add("ro")
        ctx.perm("ro", "READ", ctx.k("r/"), ctx.end(ctx.k("r/")))
        ctx.user_add("alice", "apw")
        ctx.grant_role("alice", "ro")
        ctx.put(ctx.k("r/1"), b"one")
        ctx.put(ctx.k("secret"), b"s")
        ctx.enable()
        gw = Gateway(s)
        out = []

        def req(label, path, body, headers=None):
            st, ctype, data = gw.request("POST", path, json.dumps(body), headers or {})
            status, ctype, got = gw_normalized((st, ctype, data), ctx.base)
            got = _mask_json(got, ctx.abase) if isinstance(got, list) else got
            out.append({"op": label, "status": status, "content type": ctype, "body": got})
            return data

        try:
            data = req("authenticate alice", "/v3/auth/authenticate", {"name": "alice", "password": "apw"})
            try:
                token = json.loads(data).get("token", "")
            except json.JSONDecodeError:
                token = ""
            req("authenticate wrong password", "/v3/auth/authenticate", {"name": "alice", "password": "x"})
            req("authenticate root", "/v3/auth/authenticate", {"name": "root", "password": ROOT_PW})
            rng = {"key": b64(k("r/1"))}
            req("range, no token", "/v3/kv/range", rng)
            req("range, Authorization: <token>", "/v3/kv/range", rng, {"Authorization": token})
            req("range, Authorization: Bearer <token>", "/v3/kv/range", rng, {"Authorization": "Bearer " + token})
            req("range, Grpc-Metadata-Token: <token>", "/v3/kv/range", rng, {"Grpc-Metadata-Token": token})
            req("range, Token: <token>", "/v3/kv/range", rng, {"Token": token})
            req("range, invalid token", "/v3/kv/range", rng, {"Authorization": "abcdefghijklmnop.3"})
            req("range of a key not readable", "/v3/kv/range", {"key": b64(k("secret"))}, {"Authorization": token})
            req("put not allowed", "/v3/kv/put", {"key": b64(k("r/1")), "value": b64("x")}, {"Authorization": token})
            req("auth status, alice", "/v3/auth/status", {}, {"Authorization": token})
            req("user list, alice", "/v3/auth/user/list", {}, {"Authorization": token})
        finally:
            gw.close()
        answers.append(out)
        ctx.finish()
    if os.environ.get("KINE_E2E_DUMP") == "1":
        print(f"--- gateway\n{pretty(answers[0])}")
    assert_same(answers[0], answers[1], "gateway with tokens", pair[0].name, pair[1].name)
