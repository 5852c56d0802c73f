"""etcd's HTTP/JSON gateway (issue 13): the same requests over HTTP/1.1 to kine and to a real
etcd 3.5 run side by side, answers compared after normalisation (identities masked, revisions
relative to a base taken on each server, as the gRPC differential suite does): status code,
content type, and the JSON (or text) body, for every endpoint kine serves, the two streams (watch,
lease keep-alive) and malformed input.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time

import pytest

from normalize import ID_FIELDS, REV_FIELDS, diff, rel

# Values that are a server's own (sizes, indexes, versions, names, addresses), masked.
OWN_FIELDS = {"version", "dbSize", "dbSizeInUse", "leader", "raftIndex", "raftTerm", "raftAppliedIndex",
              "ID", "name", "peerURLs", "clientURLs"}


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture(scope="module")
def pair(server_factory):
    etcd = server_factory.etcd(f"gw-etcd-{time.monotonic_ns()}")
    kine = server_factory.target(f"gw-kine-{time.monotonic_ns() % 100000}")
    return etcd, kine


class Gateway:
    """One kept-alive HTTP/1.1 connection to a server's client port."""

    def __init__(self, server):
        host, port = server.endpoint.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=20)

    def request(self, method: str, path: str, body: str | bytes | None = None, headers: dict | None = None):
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
        return response.status, response.getheader("Content-Type"), data

    def post(self, path: str, body):
        return self.request("POST", path, body if isinstance(body, (str, bytes)) else json.dumps(body))

    def revision(self) -> int:
        status, _, data = self.post("/v3/kv/range", {"key": b64("base")})
        assert status == 200, data
        return int(json.loads(data)["header"]["revision"])

    def close(self):
        self.conn.close()


def normalize_json(obj, base: int, member: bool = False):
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key == "members":
                out[key] = [normalize_json(m, base, member=True) for m in value]
            elif key in ID_FIELDS or (member and key == "ID"):
                out[key] = "<id>"
            elif key in OWN_FIELDS and key != "ID":
                out[key] = "<own>"
            elif key in REV_FIELDS and isinstance(value, str) and value.lstrip("-").isdigit():
                out[key] = rel(int(value), base)
            else:
                out[key] = normalize_json(value, base)
        return out
    if isinstance(obj, list):
        return [normalize_json(x, base) for x in obj]
    return obj


def normalized(answer, base: int):
    status, content_type, data = answer
    text = data.decode(errors="replace")
    if content_type == "application/json" and text.strip():
        lines = [line for line in text.split("\n") if line]
        try:
            return status, content_type, [normalize_json(json.loads(line), base) for line in lines]
        except json.JSONDecodeError:
            pass
    return status, content_type, text


@pytest.fixture()
def gateways(pair):
    etcd, kine = pair
    a, b = Gateway(etcd), Gateway(kine)
    yield a, b
    a.close()
    b.close()


def same(gateways, bases, method, path, body=None, *, what=None, adjust=None):
    answers = []
    for gw, base in zip(gateways, bases):
        answer = gw.request(method, path, body if body is None or isinstance(body, (str, bytes)) else json.dumps(body))
        got = normalized(answer, base)
        answers.append(adjust(got) if adjust else got)
    e, k = answers
    assert e == k, f"{what or path} {body!r}: answers differ (- etcd, + kine)\n{diff(e, k)}"
    return e


def test_kv_endpoints_answer_as_etcd(gateways):
    bases = [gw.revision() for gw in gateways]
    post = lambda path, body, what=None: same(gateways, bases, "POST", path, body, what=what)  # noqa: E731
    p = "/gwkv/"
    post("/v3/kv/put", {"key": b64(p + "x"), "value": b64("hello")})
    post("/v3/kv/put", {"key": b64(p + "x"), "value": b64("world"), "prev_kv": True})
    post("/v3/kv/put", {"key": b64(p + "y"), "value": b64(bytes([0, 255, 10]))})
    post("/v3/kv/range", {"key": b64(p + "x")})
    post("/v3/kv/range", {"key": b64(p), "range_end": b64("/gwkv0")})
    post("/v3/kv/range", {"key": b64(p), "rangeEnd": b64("/gwkv0"), "keys_only": True, "limit": 1})
    post("/v3/kv/range", {"key": b64(p), "range_end": b64("/gwkv0"), "count_only": True})
    post("/v3/kv/range", {"key": b64(p), "range_end": b64("/gwkv0"), "sort_order": "DESCEND", "sort_target": 3})
    post("/v3/kv/range", {"key": b64("none")})
    post("/v3/kv/range", '{"key":"' + b64(p + "x") + '","bogus":1}', "unknown field ignored")
    post("/v3/kv/range", {"key": b64(p + "x"), "serializable": True, "revision": str(bases[0])}, "revision is per server")
    post("/v3/kv/txn", {
        "compare": [{"target": "VERSION", "key": b64(p + "x"), "result": "EQUAL", "version": "2"}],
        "success": [{"request_put": {"key": b64(p + "t1"), "value": b64("one")}}, {"request_range": {"key": b64(p + "x")}}],
        "failure": [{"request_delete_range": {"key": b64(p + "x")}}],
    })
    post("/v3/kv/txn", {
        "compare": [{"target": "VALUE", "key": b64(p + "x"), "result": "EQUAL", "value": b64("nope")}],
        "failure": [{"request_range": {"key": b64(p + "t1")}}],
    })
    post("/v3/kv/txn", {
        "compare": [{"target": "MOD", "key": b64(p + "x"), "result": "GREATER", "mod_revision": "1"},
                    {"target": 1, "key": b64(p + "x"), "result": 2, "create_revision": "999999"}],
        "success": [{"request_txn": {"success": [{"request_put": {"key": b64(p + "t2"), "value": b64("two")}}]}}],
    })
    post("/v3/kv/txn", {})
    post("/v3/kv/txn", {"success": [{"request_put": {"key": b64(p + "d")}}, {"request_put": {"key": b64(p + "d")}}]})
    post("/v3/kv/deleterange", {"key": b64(p + "t"), "range_end": b64(p + "u"), "prev_kv": True})
    post("/v3/kv/deleterange", {"key": b64("none")})
    post("/v3/kv/put", {"key": b64(p + "x"), "ignore_value": True})
    post("/v3/kv/put", {"key": b64(p + "missing"), "ignore_value": True})
    post("/v3/kv/put", {"value": b64("v")})
    post("/v3/kv/put", {"key": b64(p + "l"), "value": b64("v"), "lease": "424242"})


def test_compaction_and_revision_errors(gateways):
    bases = [gw.revision() for gw in gateways]
    for gw in gateways:
        gw.post("/v3/kv/put", {"key": b64("/gwc/a"), "value": b64("1")})
        gw.post("/v3/kv/put", {"key": b64("/gwc/a"), "value": b64("2")})
    answers = []
    for gw, base in zip(gateways, bases):
        # Each server compacts at its own base+2 (the revision of the first put).
        answer = gw.post("/v3/kv/compaction", {"revision": str(base + 1)})
        answers.append(normalized(answer, base))
        answers.append(normalized(gw.post("/v3/kv/compaction", {"revision": base + 1}), base))
        answers.append(normalized(gw.post("/v3/kv/range", {"key": b64("/gwc/a"), "revision": str(base)}), base))
        answers.append(normalized(gw.post("/v3/kv/range", {"key": b64("/gwc/a"), "revision": "99999999"}), base))
        answers.append(normalized(gw.post("/v3/kv/compaction", {"revision": "99999999"}), base))
    assert answers[:5] == answers[5:], diff(answers[:5], answers[5:])
    assert answers[0][0] == 200 and answers[1][0] == 400 and answers[2][2][0]["code"] == 11


def lease_ttl_tolerant(answer):
    """A lease's remaining TTL depends on when it was read; within 2 s of the granted TTL is the same."""
    status, content_type, body = answer
    if isinstance(body, list):
        for item in body:
            inner = item.get("result", item)
            if "grantedTTL" in inner and "TTL" in inner and int(inner["TTL"]) >= int(inner["grantedTTL"]) - 2:
                inner["TTL"] = "<remaining>"
            if "leases" in inner:
                inner["leases"] = sorted(inner["leases"], key=lambda lease: lease["ID"])
    return status, content_type, body


def test_lease_endpoints_answer_as_etcd(gateways):
    bases = [gw.revision() for gw in gateways]
    post = lambda path, body, what=None: same(gateways, bases, "POST", path, body, what=what, adjust=lease_ttl_tolerant)  # noqa: E731
    post("/v3/lease/grant", {"TTL": 60, "ID": "12345"})
    post("/v3/lease/grant", {"TTL": "30", "ID": 12346})
    post("/v3/lease/grant", {"TTL": 30, "ID": "12345"}, "existing id")
    post("/v3/lease/grant", {"TTL": "99999999999", "ID": "5"}, "too large TTL")
    post("/v3/kv/put", {"key": b64("/gwl/k"), "value": b64("v"), "lease": "12345"})
    post("/v3/lease/timetolive", {"ID": "12345", "keys": True})
    post("/v3/kv/lease/timetolive", {"ID": 12346})
    post("/v3/lease/timetolive", {"ID": 999})
    post("/v3/lease/leases", {})
    post("/v3/kv/lease/leases", "")
    post("/v3/lease/revoke", {"ID": "12346"})
    post("/v3/kv/lease/revoke", {"ID": "12346"}, "revoked twice")
    post("/v3/lease/revoke", {"ID": "999"})


def test_lease_keepalive_stream(gateways):
    bases = [gw.revision() for gw in gateways]
    for gw in gateways:
        gw.post("/v3/lease/grant", {"TTL": 40, "ID": "22222"})
    post = lambda body, what: same(gateways, bases, "POST", "/v3/lease/keepalive", body, what=what)  # noqa: E731
    two = post('{"ID":"22222"}{"ID":"22222"}', "two keep-alives in one body")
    assert two[0] == 200 and len(two[2]) == 2 and two[2][0]["result"]["TTL"] == "40"
    post('{"ID":"999"}', "unknown lease")
    assert post("", "empty body")[2] == ""
    first_bad = post("xx", "malformed first request")
    assert first_bad[0] == 500 and first_bad[2][0]["code"] == 2


class Stream:
    """A streamed POST over a raw socket: a chunked request body sent piece by piece, and the
    chunked answer read line by line."""

    def __init__(self, server, path: str):
        host, port = server.endpoint.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        # As curl sends a streamed body: etcd (Go's server) reads nothing of it before answering
        # the 100-continue; without the header it waits for more body and never answers.
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n".encode())
        self.buffer = b""
        self.status = None
        self.chunks = b""

    def send(self, text: str):
        data = text.encode()
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buffer += data

    def _head(self):
        while True:
            while b"\r\n\r\n" not in self.buffer:
                self._fill()
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 100 "):
                break
        self.status = int(head.split(b" ")[1])
        assert b"chunked" in head.lower(), head

    def line(self) -> dict:
        if self.status is None:
            self._head()
        while b"\n" not in self.chunks:
            while b"\r\n" not in self.buffer:
                self._fill()
            size_line, rest = self.buffer.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(rest) < size + 2:
                self.buffer = rest
                self._fill()
                rest = self.buffer
            self.chunks += rest[:size]
            self.buffer = rest[size + 2:]
        line, self.chunks = self.chunks.split(b"\n", 1)
        return json.loads(line)

    def quiet(self, seconds: float = 0.5) -> bool:
        """Nothing more arrives within `seconds`."""
        self.sock.settimeout(seconds)
        try:
            return not self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(10)

    def close(self):
        self.sock.close()


def watch_session(server, gw):
    """The capture of docs/research (part B, watch): requests streamed one at a time."""
    base = gw.revision()
    out = []
    stream = Stream(server, "/v3/watch")
    try:
        stream.send(json.dumps({"create_request": {"key": b64("/gww/"), "range_end": b64("/gww0"), "prev_kv": True, "watch_id": "7"}}))
        out.append(stream.line())
        gw.post("/v3/kv/put", {"key": b64("/gww/1"), "value": b64("a")})
        gw.post("/v3/kv/put", {"key": b64("/gww/1"), "value": b64("b")})
        gw.post("/v3/kv/deleterange", {"key": b64("/gww/1")})
        out += [stream.line() for _ in range(3)]
        stream.send(json.dumps({"create_request": {"key": b64("/gww/2"), "filters": ["NODELETE"]}}))
        out.append(stream.line())
        stream.send('{"progress_request":{}}')
        out.append(stream.line())
        stream.send('{"cancel_request":{"watch_id":"7"}}')
        out.append(stream.line())
        stream.send('{"create_request":{"key":"' + b64("/gww/") + '","range_end":"' + b64("/gww0") + '","watch_id":"7"}}')
        out.append(stream.line())
        # A malformed later request stops the forwarding of requests; events go on.
        stream.send("garbage")
        gw.post("/v3/kv/put", {"key": b64("/gww/2"), "value": b64("c")})
        out += [stream.line(), stream.line()]
        assert stream.quiet()
        return stream.status, [normalize_json(x, base) for x in out]
    finally:
        stream.close()


def test_watch_stream(pair, gateways):
    etcd, kine = pair
    e = watch_session(etcd, gateways[0])
    k = watch_session(kine, gateways[1])
    # Two watches see the last put; etcd sends their events in an order of its own choosing.
    e[1][-2:] = sorted(e[1][-2:], key=json.dumps)
    k[1][-2:] = sorted(k[1][-2:], key=json.dumps)
    assert e == k, diff(e, k)


def test_watch_compacted_start_and_curl_style_body(pair, gateways):
    bases = [gw.revision() for gw in gateways]
    for gw, base in zip(gateways, bases):
        gw.post("/v3/kv/put", {"key": b64("/gwwc"), "value": b64("1")})
        gw.post("/v3/kv/put", {"key": b64("/gwwc"), "value": b64("2")})
        gw.post("/v3/kv/compaction", {"revision": str(base + 2)})
    results = []
    for server, base in zip(pair, bases):
        # As curl -d sends it: the whole body at once; the watch stays open after it ends.
        stream = Stream(server, "/v3/watch")
        stream.send(json.dumps({"create_request": {"key": b64("/gwwc"), "start_revision": str(base + 1)}}))
        stream.sock.sendall(b"0\r\n\r\n")
        results.append([normalize_json(stream.line(), base), normalize_json(stream.line(), base)])
        stream.close()
    assert results[0] == results[1], diff(results[0], results[1])
    assert results[0][1]["result"]["canceled"] is True


def test_maintenance_and_cluster(gateways):
    bases = [gw.revision() for gw in gateways]
    status = same(gateways, bases, "POST", "/v3/maintenance/status", {})
    assert set(status[2][0]) == {"header", "version", "dbSize", "leader", "raftIndex", "raftTerm", "raftAppliedIndex", "dbSizeInUse"}
    same(gateways, bases, "POST", "/v3/cluster/member/list", {})
    same(gateways, bases, "POST", "/v3/cluster/member/list", {"linearizable": True})
    same(gateways, bases, "POST", "/v3/maintenance/alarm", {})


@pytest.mark.parametrize("body", [
    '{"key":', "not json", "[]", '{"key":123}', '{"serializable":"yes"}', '{"limit":"abc"}', '{"limit":1.5}',
    '{"key":"***"}', '{"key":"L3g"}', '{"key":"L3o_"}', '{"sort_order":"SIDEWAYS"}', "", "{}", "null", "123",
    '{"key":"L3g=","range_end":true}', '{"key":"L3g=",}', '{"key":"L3g="} trailing', '{"key":"\\u00e9"}',
])
def test_malformed_json_answers_as_etcd(gateways, body):
    bases = [gw.revision() for gw in gateways]
    same(gateways, bases, "POST", "/v3/kv/range", body)


@pytest.mark.parametrize("method,path", [
    ("GET", "/v3/kv/range"), ("PUT", "/v3/kv/put"), ("POST", "/v3/kv/nosuch"), ("POST", "/v3/kv/range/"),
    ("POST", "/v3beta/kv/range"), ("OPTIONS", "/v3/kv/range"), ("GET", "/v3/watch"),
])
def test_methods_and_paths(gateways, method, path):
    bases = [gw.revision() for gw in gateways]
    same(gateways, bases, method, path, '{"key":"L3g="}' if method == "POST" else None)


def test_oversized_request(gateways):
    bases = [gw.revision() for gw in gateways]
    body = {"key": b64("/big"), "value": b64(b"x" * (2200 * 1000))}
    answer = same(gateways, bases, "POST", "/v3/kv/put", body)
    assert answer[0] == 429


def test_many_requests_on_one_connection(pair):
    """A kept-alive client: a hundred requests over one connection, each answered."""
    gw = Gateway(pair[1])
    gw.post("/v3/kv/put", {"key": b64("/gwka/first"), "value": b64("v")})
    first = gw.conn.sock
    for i in range(100):
        status, _, _ = gw.post("/v3/kv/put", {"key": b64(f"/gwka/{i}"), "value": b64("v")})
        assert status == 200
    assert gw.conn.sock is first and first is not None
    status, _, data = gw.post("/v3/kv/range", {"key": b64("/gwka/"), "range_end": b64("/gwka0"), "count_only": True})
    assert json.loads(data)["count"] == "101"
    gw.close()


def test_lock_and_election_paths(gateways):
    """etcd's v3lock and v3election gateway paths: a lock held with a lease and released, the
    election errors (no leader, missing leader key), a wrong method."""
    bases = [gw.revision() for gw in gateways]
    post = lambda path, body, what=None: same(gateways, bases, "POST", path, body, what=what)  # noqa: E731
    lease = str(7_000_000 + time.monotonic_ns() % 1_000_000)
    post("/v3/lease/grant", {"TTL": 30, "ID": lease})
    post("/v3/lock/lock", {"name": b64("/gwlock"), "lease": lease})
    post("/v3/lock/unlock", {"key": b64("/gwlock/" + format(int(lease), "x"))})
    post("/v3/lock/unlock", {"key": b64("/gwlock/none")})
    post("/v3/election/leader", {"name": b64("/gwelection-none")})
    post("/v3/election/proclaim", {"value": b64("v")})
    post("/v3/election/resign", {})
    post("/v3/election/campaign", {"name": b64("/gwelection"), "lease": lease, "value": b64("one")})
    post("/v3/election/leader", {"name": b64("/gwelection")})
    post("/v3/lease/revoke", {"ID": lease})
    for path in ["/v3/lock/lock", "/v3/election/observe"]:
        same(gateways, bases, "GET", path)
