"""A real kube-apiserver and kube-controller-manager (v1.36.2, kube.py) on kine and on a real etcd
3.5.1, the same workload sent to both, outcomes compared.

Each test runs one script against both apiservers at once (a thread each, so waits for controllers
are paid once) and compares what a client sees: HTTP status codes and Status reasons, object names
and counts, owner references, watch event sequences, health check names, metric families and
failed storage requests; never raw resourceVersions, which legitimately differ. Each comparison is
backed by assertions on etcd's answer, so two servers wrong the same way fail too. Three pairs,
each on an etcd and a kine of their own (a fresh database; the session `ref`/`target` servers are
not used, since the apiserver compacts):

  main        watch cache on, `--event-ttl=5s`, a controller-manager each: CRUD with
              resourceVersion and uid preconditions, server-side apply, deletecollection;
              paginated LISTs (continue tokens, remainingItemCount, a page after writes);
              LISTs at an exact resourceVersion; watches from a resourceVersion, from "0", from
              none, from revision 2, with a field selector, and a module-long watch that must see
              the cache's periodic bookmark; a CRD and its custom resources; Deployment ->
              ReplicaSet -> Pods; garbage collection (Foreground, Background, Orphan); namespace
              deletion; the leader-election Lease; Events expiring with their etcd lease;
              /readyz /livez /healthz with the etcd checks; the apiserver's etcd metrics;
  compaction  `--watch-cache=false --etcd-compaction-interval=3s`, so reads and watches reach the
              store: the compaction seen on the store itself (and in kine's log), then a watch
              from a compacted resourceVersion, an Exact LIST there and a LIST continue token from
              before it answer 410 on both;
  unix        etcd and kine listening on unix sockets with absolute paths, an apiserver on each
              (`--etcd-servers=unix:///...`), and etcdctl 3.5 over the same sockets (every key the
              apiserver wrote, compared).

What differs because kine reports etcd 3.5.13 (RequestWatchProgress) where the reference is 3.5.1
is checked apart, each side for what it should do: watch-list (`sendInitialEvents`) and a watch
without resourceVersion allowing bookmarks are refused by the apiserver on etcd 3.5.1 and served
on kine; `etcd_bookmark_total` (progress notifications: kine every 5 s, etcd every 10 minutes).

Each test works in namespaces of its own (and labels its ConfigMaps: the controller-manager adds
its own to every namespace). Everything started here is stopped, and the databases dropped, at
the end of the module, pass or fail (KINE_E2E_KEEP=1 keeps the logs and databases;
KINE_E2E_DUMP=1 prints etcd's record of each comparison). Skipped when the Kubernetes binaries
are missing (kubebin.py). About 100 s on 2 cores.
"""

from __future__ import annotations

import base64
import difflib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

import harness
import kube
import kubebin

pytestmark = pytest.mark.needs_kine

RUN = uuid.uuid4().hex[:5]
SIDES = ("etcd", "kine")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


# --------------------------------------------------------------------------------------------
# Pairs of apiservers


@dataclass
class Side:
    """One apiserver and the store under it."""

    name: str  # "etcd" or "kine"
    store: harness.Server
    api: kube.APIServer
    cm: kube.KubeProcess | None = None

    @property
    def c(self) -> kube.RestClient:
        return self.api.client()


@dataclass
class Pair:
    etcd: Side
    kine: Side
    extra: dict = field(default_factory=dict)

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.etcd, self.kine

    def both(self, fn: Callable[[Side], Any]) -> tuple[Any, Any]:
        """fn(side) on both sides at once; (etcd's result, kine's result); the first exception
        (with the side named) is raised."""
        results: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}

        def run(s: Side) -> None:
            try:
                results[s.name] = fn(s)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors[s.name] = e

        threads = [threading.Thread(target=run, args=(s,)) for s in self.sides]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name in SIDES:
            if name in errors:
                e = errors[name]
                raise AssertionError(f"on the {name} side: {e!r}") from e
        return results["etcd"], results["kine"]

    def check_alive(self) -> None:
        for s in self.sides:
            for p, what in ((s.store, "store"), (s.api, "kube-apiserver"), (s.cm, "kube-controller-manager")):
                if p is not None and not p.alive():
                    pytest.fail(f"{s.name} {what} died:\n{p.log_tail()}")


def same(etcd: Any, kine: Any, what: str) -> None:
    """Asserts equality and shows a diff of the JSON forms (- etcd, + kine) when they differ.
    KINE_E2E_DUMP=1 prints etcd's record (`-s` to see it)."""
    if os.environ.get("KINE_E2E_DUMP") == "1":
        harness.log(f"--- {what} (etcd):\n{json.dumps(etcd, indent=1, sort_keys=True, default=str)}")
    if etcd == kine:
        return
    a = json.dumps(etcd, indent=1, sort_keys=True, default=str).splitlines()
    b = json.dumps(kine, indent=1, sort_keys=True, default=str).splitlines()
    d = "\n".join(difflib.unified_diff(a, b, "etcd", "kine", lineterm=""))
    pytest.fail(f"{what} differs between etcd and kine:\n{d}")


def _start_pair_apiservers(stores: dict[str, harness.Server], tag: str, urls: dict[str, str],
                           extra_args: list[str]) -> dict[str, kube.APIServer]:
    out: dict[str, kube.APIServer] = {}
    errors: list[BaseException] = []

    def start(name: str) -> None:
        try:
            out[name] = kube.start_apiserver(f"{tag}-{name}", urls[name], extra_args=extra_args)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start, args=(n,)) for n in SIDES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for a in out.values():
            a.stop()
        raise errors[0]
    return out


class Stack:
    """Everything one module fixture started, stopped in reverse order."""

    def __init__(self) -> None:
        self.stops: list[Callable[[], None]] = []

    def add(self, stop: Callable[[], None]) -> None:
        self.stops.append(stop)

    def close(self) -> None:
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                harness.log(f"test_kubernetes: cleanup step failed: {e!r}")


def _kine_db(postgres_url: str, stack: Stack, tag: str) -> str:
    name = harness.unique_db_name(tag)
    url = harness.create_database(postgres_url, name)
    if os.environ.get("KINE_E2E_KEEP") != "1":
        stack.add(lambda: harness.drop_database(postgres_url, name))
    return url


def kine_metrics_flag() -> str:
    """kine's own metrics port on loopback (its default is 0.0.0.0:8080)."""
    return f"--metrics-bind-address=127.0.0.1:{harness.free_port()}"


def _tcp_pair(postgres_url: str, stack: Stack, tag: str, api_args: list[str]) -> dict[str, Any]:
    etcd = harness.start_etcd(f"kube-{tag}-etcd-{RUN}")
    stack.add(etcd.stop)
    kine = harness.start_kine(f"kube-{tag}-kine-{RUN}", _kine_db(postgres_url, stack, f"kube_{tag}"),
                              [kine_metrics_flag()])
    stack.add(kine.stop)
    stores = {"etcd": etcd, "kine": kine}
    apis = _start_pair_apiservers(stores, tag, {n: f"http://{s.endpoint}" for n, s in stores.items()}, api_args)
    for a in apis.values():
        stack.add(a.stop)
    return {"stores": stores, "apis": apis}


@pytest.fixture(scope="module")
def bins() -> dict[str, str]:
    return kubebin.require("kube-apiserver", "kube-controller-manager")


@pytest.fixture(scope="module")
def main_pair(bins, postgres_url):
    """Watch cache on, short event TTL, a controller-manager on each side."""
    stack = Stack()
    try:
        p = _tcp_pair(postgres_url, stack, "main", ["--event-ttl=5s"])
        sides = {n: Side(n, p["stores"][n], p["apis"][n]) for n in SIDES}
        for s in sides.values():
            s.cm = kube.start_controller_manager(f"cm-{s.name}", s.api)
        pair = Pair(sides["etcd"], sides["kine"])
        # A watch on every test's ConfigMaps for the whole module (test_periodic_bookmarks).
        # From the watch cache's own resourceVersion (a LIST at "0"): on etcd 3.5.1 a watch
        # without one, or from the store's newest revision, can wait for the cache in vain (see
        # test_watch_from_resource_version_with_bookmarks).
        for s in pair.sides:
            rv = s.c.get("/api/v1/configmaps", {"labelSelector": MINE, "resourceVersion": "0"}).resource_version
            w = s.c.watch("/api/v1/configmaps", {"labelSelector": MINE, "allowWatchBookmarks": "true",
                                                 "resourceVersion": rv}, timeout=600)
            stack.add(w.close)
            pair.extra[f"watch-{s.name}"] = w
        pair.extra["watch-started"] = time.monotonic()
        # The controllers this module relies on are running once the leader Lease exists and the
        # default ServiceAccount of the default namespace has been made.
        pair.both(lambda s: s.c.wait_for(
            lambda: s.c.get("/api/v1/namespaces/default/serviceaccounts/default").status == 200,
            90, what=f"{s.name}: controller-manager made the default ServiceAccount"))
        yield pair
        pair.check_alive()
    finally:
        stack.close()


@pytest.fixture(scope="module")
def compaction_pair(bins, postgres_url):
    """No watch cache (reads and watches go to the store) and a 3 s compaction interval."""
    stack = Stack()
    try:
        p = _tcp_pair(postgres_url, stack, "compact", ["--watch-cache=false", "--etcd-compaction-interval=3s"])
        pair = Pair(*(Side(n, p["stores"][n], p["apis"][n]) for n in SIDES))
        yield pair
        pair.check_alive()
    finally:
        stack.close()


# --------------------------------------------------------------------------------------------
# Small helpers


def ns_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}"


# Every ConfigMap a test makes carries this label, and the tests list and watch with it: the
# controller-manager publishes ConfigMaps of its own (kube-root-ca.crt, ...) into each namespace.
MINE = "e2e=kube"


def cm_body(name: str, data: dict | None = None, labels: dict | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": {"e2e": "kube", **(labels or {})}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def make_ns(pair: Pair, ns: str) -> None:
    def create(s: Side) -> int:
        return s.c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": ns}}).status
    same(*pair.both(create), f"creating namespace {ns}")


def status_of(r: kube.Response) -> list:
    """What a client can rely on in an answer: status code and the Status reason."""
    return [r.status, r.reason]


def deployment_body(name: str, replicas: int, app: str) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": PAUSE_IMAGE}],
                         "terminationGracePeriodSeconds": 0},
            },
        },
    }


def owners(obj: dict) -> list[str]:
    return sorted(f"{o['kind']}/{o['name']}/controller={o.get('controller', False)}"
                  for o in obj["metadata"].get("ownerReferences") or [])


def pods_of(c: kube.RestClient, ns: str, app: str) -> list[dict]:
    r = c.get(f"{ns_path(ns)}/pods", {"labelSelector": f"app={app}"})
    assert r.status == 200, r
    return [p for p in r.items if not p["metadata"].get("deletionTimestamp")]


def rs_of(c: kube.RestClient, ns: str, app: str) -> list[dict]:
    r = c.get(f"/apis/apps/v1/namespaces/{ns}/replicasets", {"labelSelector": f"app={app}"})
    assert r.status == 200, r
    return r.items


def describe_event(e: dict) -> list:
    obj = e.get("object") or {}
    if e["type"] == "ERROR":
        return ["ERROR", obj.get("code"), obj.get("reason")]
    if e["type"] == "BOOKMARK":
        ann = (obj.get("metadata") or {}).get("annotations") or {}
        return ["BOOKMARK", ann.get("k8s.io/initial-events-end")]
    return [e["type"], obj.get("metadata", {}).get("name"), obj.get("data")]


def etcdctl_at(server: harness.Server, endpoint: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return subprocess.run([harness.etcdctl35(), f"--endpoints={endpoint}", "--dial-timeout=3s",
                           "--command-timeout=10s", *args],
                          capture_output=True, text=True, timeout=30, env=env)


# --------------------------------------------------------------------------------------------
# CRUD, preconditions


def test_crud_with_resource_version_preconditions(main_pair):
    ns = f"crud-{RUN}"
    make_ns(main_pair, ns)
    path = f"{ns_path(ns)}/configmaps"

    def script(s: Side) -> list:
        c = s.c
        out = []
        r = c.post(path, cm_body("a", {"k": "1"}))
        out.append(["create", status_of(r), r.body["data"]])
        rv1 = r.resource_version
        out.append(["create again", status_of(c.post(path, cm_body("a")))])
        r = c.get(f"{path}/a")
        out.append(["get", status_of(r), r.body["data"], r.resource_version == rv1])
        body = r.body
        body["data"] = {"k": "2"}
        r = c.put(f"{path}/a", body)
        out.append(["update at current rv", status_of(r), r.body["data"]])
        rv2 = r.resource_version
        assert rv2 != rv1
        body["data"] = {"k": "3"}  # still carries rv1
        r = c.put(f"{path}/a", body)
        out.append(["update at stale rv", status_of(r), "the object has been modified" in r.text])
        body["metadata"].pop("resourceVersion")
        r = c.put(f"{path}/a", body)
        out.append(["update without rv", status_of(r), r.body["data"]])
        r = c.patch(f"{path}/a", {"metadata": {"resourceVersion": rv2}, "data": {"k": "4"}})
        out.append(["patch at stale rv", status_of(r)])
        r = c.patch(f"{path}/a", {"data": {"k": "5"}})
        out.append(["patch", status_of(r), r.body["data"]])
        rv5 = r.resource_version
        r = c.delete(f"{path}/a", {"kind": "DeleteOptions", "apiVersion": "v1",
                                   "preconditions": {"resourceVersion": rv1}})
        out.append(["delete at stale rv", status_of(r)])
        r = c.delete(f"{path}/a", {"kind": "DeleteOptions", "apiVersion": "v1",
                                   "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
        out.append(["delete with wrong uid", status_of(r)])
        r = c.delete(f"{path}/a", {"kind": "DeleteOptions", "apiVersion": "v1",
                                   "preconditions": {"resourceVersion": rv5}})
        out.append(["delete at current rv", status_of(r)])
        out.append(["get deleted", status_of(c.get(f"{path}/a"))])
        out.append(["delete deleted", status_of(c.delete(f"{path}/a"))])
        out.append(["update deleted", status_of(c.put(f"{path}/a", cm_body("a")))])
        # Server-side apply: two managers, a conflict, then forced.
        apply = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "applied", "labels": {"e2e": "kube"}}, "data": {"owner": "one"}}
        ct = "application/apply-patch+yaml"
        r = c.patch(f"{path}/applied", apply, {"fieldManager": "one"}, content_type=ct)
        out.append(["apply create", status_of(r), r.body.get("data")])
        apply["data"] = {"owner": "two"}
        r = c.patch(f"{path}/applied", apply, {"fieldManager": "two"}, content_type=ct)
        out.append(["apply conflict", status_of(r)])
        r = c.patch(f"{path}/applied", apply, {"fieldManager": "two", "force": "true"}, content_type=ct)
        out.append(["apply forced", status_of(r), r.body.get("data"),
                    sorted(m["manager"] for m in r.body["metadata"].get("managedFields") or [])])
        # Delete a collection by label.
        for n in ("d1", "d2", "d3"):
            assert c.post(path, cm_body(n, labels={"batch": "d"})).status == 201
        r = c.delete(path, params={"labelSelector": "batch=d"})
        out.append(["deletecollection", status_of(r), sorted(r.names)])
        out.append(["list", c.get(path, {"labelSelector": MINE}).names])
        return out

    e, k = main_pair.both(script)
    same(e, k, "CRUD answers")
    # The script must have exercised real conflicts, not just matched two broken servers.
    answers = {row[0]: row[1] for row in e}
    assert answers["update at stale rv"] == [409, "Conflict"]
    assert answers["delete at stale rv"] == [409, "Conflict"]
    assert answers["create again"] == [409, "AlreadyExists"]
    assert answers["get deleted"] == [404, "NotFound"]
    assert answers["apply conflict"] == [409, "Conflict"]
    assert e[-1] == ["list", ["applied"]], e[-1]


# --------------------------------------------------------------------------------------------
# LIST: pages, exact resourceVersion


def test_paginated_list(main_pair):
    ns = f"pages-{RUN}"
    make_ns(main_pair, ns)
    path = f"{ns_path(ns)}/configmaps"
    names = [f"cm-{i:03d}" for i in range(23)]

    def script(s: Side) -> list:
        c = s.c
        for n in names:
            assert c.post(path, cm_body(n, labels={"even": str(int(n[-1]) % 2 == 0).lower()})).status == 201
        out = []
        for params in ({"limit": 10, "labelSelector": MINE},
                       {"limit": 10, "resourceVersion": "0", "labelSelector": MINE},
                       {"limit": 4, "labelSelector": MINE + ",even=true"}):
            pages, cont = [], None
            while True:
                r = c.get(path, {**params, "continue": cont})
                assert r.status == 200, r
                meta = r.body["metadata"]
                pages.append([r.names, meta.get("remainingItemCount"), bool(meta.get("continue"))])
                cont = meta.get("continue")
                if not cont or len(pages) > 20:
                    break
            out.append([params, pages])
        r = c.get(path, {"labelSelector": MINE, "limit": 5})
        cont = r.body["metadata"]["continue"]
        # A continue token with another selector or a bad one.
        sel = {"labelSelector": MINE, "limit": 5}
        out.append(["garbage token", status_of(c.get(path, {**sel, "continue": "not-a-token"}))])
        out.append(["token + resourceVersion", status_of(c.get(path, {**sel, "continue": cont,
                                                                       "resourceVersion": "1"}))])
        # Writes between pages: the next page is still from the first page's snapshot.
        c.delete(f"{path}/cm-007")
        c.post(path, cm_body("cm-0055"))
        r2 = c.get(path, {"labelSelector": MINE, "limit": 5, "continue": cont})
        out.append(["page after writes", status_of(r2), r2.names])
        # Without a selector (Secrets: no controller adds any here), so that remainingItemCount
        # is given: from the store (no resourceVersion) and from the watch cache ("0").
        spath = f"{ns_path(ns)}/secrets"
        for i in range(120):
            assert c.post(spath, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s-{i:03d}"},
                                  "stringData": {"i": str(i)}}).status == 201
        for params in ({"limit": 50}, {"limit": 50, "resourceVersion": "0"}):
            pages, cont = [], None
            while True:
                r = c.get(spath, {**params, "continue": cont})
                assert r.status == 200, r
                meta = r.body["metadata"]
                pages.append([r.names[0], r.names[-1], len(r.names), meta.get("remainingItemCount")])
                cont = meta.get("continue")
                if not cont or len(pages) > 10:
                    break
            out.append(["secrets", params, pages])
        return out

    e, k = main_pair.both(script)
    same(e, k, "paginated lists")
    first = e[0][1]
    assert [[len(p[0]), p[2]] for p in first] == [[10, True], [10, True], [3, False]], first
    assert sum((p[0] for p in first), []) == names
    assert ["page after writes", [200, None], names[5:10]] in e, e
    secrets = [r[2] for r in e if r[0] == "secrets"]
    # (resourceVersion "0" is served whole from the watch cache: limit is not applied there.)
    assert secrets == [[["s-000", "s-049", 50, 70], ["s-050", "s-099", 50, 20], ["s-100", "s-119", 20, None]],
                       [["s-000", "s-119", 120, None]]], secrets


def test_list_at_exact_resource_version(main_pair):
    ns = f"exact-{RUN}"
    make_ns(main_pair, ns)
    path = f"{ns_path(ns)}/configmaps"

    def script(s: Side) -> list:
        c = s.c
        out = []
        assert c.post(path, cm_body("one", {"v": "1"})).status == 201
        rv1 = c.get(path, {"labelSelector": MINE}).resource_version
        assert c.post(path, cm_body("two")).status == 201
        assert c.patch(f"{path}/one", {"data": {"v": "2"}}).status == 200
        rv2 = c.get(path, {"labelSelector": MINE}).resource_version
        assert c.delete(f"{path}/two").status == 200
        for label, rv in (("rv1", rv1), ("rv2", rv2)):
            r = c.get(path, {"labelSelector": MINE, "resourceVersion": rv, "resourceVersionMatch": "Exact"})
            out.append([label, "Exact", status_of(r), r.names, [it.get("data") for it in r.items],
                        r.resource_version == rv])
            r = c.get(path, {"labelSelector": MINE, "resourceVersion": rv, "resourceVersionMatch": "Exact", "limit": 1})
            out.append([label, "Exact limit 1", status_of(r), r.names, bool(r.body["metadata"].get("continue"))])
            r = c.get(path, {"labelSelector": MINE, "resourceVersion": rv, "resourceVersionMatch": "NotOlderThan"})
            out.append([label, "NotOlderThan", status_of(r), r.names])
        r = c.get(path, {"labelSelector": MINE})
        out.append(["latest", status_of(r), r.names, [it.get("data") for it in r.items]])
        sel = {"labelSelector": MINE}
        out.append(["Exact without rv", status_of(c.get(path, {**sel, "resourceVersionMatch": "Exact"}))])
        for label, rv, match in (("bad match", rv1, "Nope"), ("bad rv", "abc", "Exact")):
            out.append([label, status_of(c.get(path, {**sel, "resourceVersion": rv, "resourceVersionMatch": match}))])
        return out

    e, k = main_pair.both(script)
    same(e, k, "LISTs at exact resourceVersions")
    assert e[0] == ["rv1", "Exact", [200, None], ["one"], [{"v": "1"}], True], e[0]
    assert e[3][3] == ["one", "two"], e[3]


# --------------------------------------------------------------------------------------------
# Watch


def test_watch_from_resource_version_with_bookmarks(main_pair):
    ns = f"watch-{RUN}"
    make_ns(main_pair, ns)
    path = f"{ns_path(ns)}/configmaps"

    def script(s: Side) -> dict:
        c = s.c
        assert c.post(path, cm_body("before", {"v": "0"})).status == 201
        rv0 = c.get(path, {"labelSelector": MINE}).resource_version
        assert c.post(path, cm_body("x", {"v": "1"})).status == 201
        assert c.patch(f"{path}/x", {"data": {"v": "2"}}).status == 200
        assert c.delete(f"{path}/before").status == 200
        out: dict[str, Any] = {}
        # From rv0: the three changes after it, then the end of the stream. Bookmarks are left
        # out: whether the cache sends one before the end depends on whether its resourceVersion
        # moved past the last event, which on kine, with a progress notification every 5 s
        # (etcd: every 10 minutes), it often has (test_periodic_bookmarks checks bookmarks).
        with c.watch(path, {"labelSelector": MINE, "resourceVersion": rv0, "allowWatchBookmarks": "true"},
                     timeout=5) as w:
            evs = w.collect(15)
        out["from rv0"] = [w.status, [describe_event(e) for e in evs if e["type"] != "BOOKMARK"]]
        # Watch-list: initial state as ADDED events, then a bookmark marking their end.
        with c.watch(path, {"labelSelector": MINE, "sendInitialEvents": "true", "resourceVersion": "0",
                            "resourceVersionMatch": "NotOlderThan",
                            "allowWatchBookmarks": "true"}, timeout=30) as w:
            evs = w.collect(20, until=lambda e: e["type"] == "BOOKMARK" and (
                e["object"]["metadata"].get("annotations") or {}).get("k8s.io/initial-events-end") == "true")
            c.post(path, cm_body("after-list"))
            evs += w.collect(10, until=lambda e: e["type"] == "ADDED")
        out["watch-list"] = [w.status, [describe_event(e) for e in evs]]
        # From "0" (any): the current state as ADDED events, then new changes.
        with c.watch(path, {"labelSelector": MINE, "resourceVersion": "0"}, timeout=30) as w:
            initial = sorted(describe_event(e) for e in w.collect(5, quiet=1.5))
            c.delete(f"{path}/x")
            more = w.collect(10, until=lambda e: e["type"] == "DELETED")
        out["from 0"] = [w.status, initial, [describe_event(e) for e in more]]
        # No resourceVersion: the current state as ADDED events, then what follows. (The write is
        # made whatever the watch answered, so that both sides hold the same objects.)
        with c.watch(path, {"labelSelector": MINE}, timeout=10) as w:
            evs = w.collect(5, quiet=1.5)  # the current state, as ADDED events
            assert c.post(path, cm_body("after-unset")).status == 201
            if not any(e["type"] == "ERROR" for e in evs):
                evs += w.collect(10, until=lambda e: e["object"]["metadata"].get("name") == "after-unset")
        out["no rv"] = [w.status, [describe_event(e) for e in evs]]
        # The same with bookmarks allowed: the apiserver then needs RequestWatchProgress (below).
        with c.watch(path, {"labelSelector": MINE, "allowWatchBookmarks": "true"}, timeout=10) as w:
            evs = w.collect(5, quiet=1.5)
        out["no rv, bookmarks"] = [w.status, [describe_event(e) for e in evs if e["type"] != "BOOKMARK"]]
        # A field selector on a watch from rv0.
        with c.watch(path, {"labelSelector": MINE, "resourceVersion": rv0, "fieldSelector": "metadata.name=x"},
                     timeout=30) as w:
            evs = w.collect(10, until=lambda e: e["type"] == "DELETED")
        out["field selector"] = [w.status, [describe_event(e) for e in evs]]
        # From revision 2, older than the watch cache's window (nothing is compacted on this pair:
        # test_apiserver_compaction has the compacted case): the namespace's whole history.
        with c.watch(path, {"labelSelector": MINE, "resourceVersion": "2"}, timeout=10) as w:
            evs = w.collect(8, until=lambda e: e["object"].get("metadata", {}).get("name") == "after-unset")
        out["rv 2"] = [w.status, [describe_event(e) for e in evs]]
        return out

    e, k = main_pair.both(script)
    # Watch-list, and a watch without resourceVersion that allows bookmarks, need the store's
    # RequestWatchProgress: etcd 3.5.1 has none (the apiserver refuses the stream: "a watch stream
    # was requested by the client but the required storage feature RequestWatchProgress is
    # disabled"), kine reports 3.5.13 and has it. Checked apart, each for what it is. A watch
    # without resourceVersion waits for the cache to reach the store's current revision: on etcd
    # 3.5.1 only a ConfigMap event moves it there (progress notifications come every 10 minutes),
    # so when another resource was written last the apiserver gives up after 3 s (504 Timeout,
    # "Too large resource version"); kine's progress notifications move it (every 5 s, and on
    # request).
    e_list, k_list = e.pop("watch-list"), k.pop("watch-list")
    e_nrb, k_nrb = e.pop("no rv, bookmarks"), k.pop("no rv, bookmarks")
    e_unset, k_unset = e.pop("no rv"), k.pop("no rv")
    same(e, k, "watch events")
    assert e["from rv0"][1] == [["ADDED", "x", {"v": "1"}], ["MODIFIED", "x", {"v": "2"}],
                                ["DELETED", "before", {"v": "0"}]], e["from rv0"]
    assert e_list == [200, [["ERROR", 500, "InternalError"]]], e_list
    assert e_nrb == [200, [["ERROR", 500, "InternalError"]]], e_nrb
    assert k_nrb == [200, [["ADDED", "after-list", None], ["ADDED", "after-unset", None]]], k_nrb
    assert k_list == [200, [["ADDED", "x", {"v": "2"}], ["BOOKMARK", "true"], ["ADDED", "after-list", None]]], k_list
    unset = [200, [["ADDED", "after-list", None], ["ADDED", "after-unset", None]]]
    assert k_unset == unset, k_unset
    assert e_unset in (unset, [200, [["ERROR", 504, "Timeout"]]]), e_unset
    assert e["from 0"] == [200, [["ADDED", "after-list", None], ["ADDED", "x", {"v": "2"}]],
                           [["DELETED", "x", {"v": "2"}]]], e["from 0"]
    assert [d[:2] for d in e["rv 2"][1]] == [
        ["ADDED", "before"], ["ADDED", "x"], ["MODIFIED", "x"], ["DELETED", "before"],
        ["ADDED", "after-list"], ["DELETED", "x"], ["ADDED", "after-unset"]], e["rv 2"]


# --------------------------------------------------------------------------------------------
# CRDs and custom resources


def test_crd_and_custom_resources(main_pair):
    group = "e2e.kine.io"
    plural = f"widgets{RUN}"
    crd_name = f"{plural}.{group}"
    ns = f"crd-{RUN}"
    make_ns(main_pair, ns)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": f"widget{RUN}", "kind": f"Widget{RUN.upper()}",
                      "listKind": f"Widget{RUN.upper()}List"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1}}}}}},
                "subresources": {"status": {}},
            }],
        },
    }
    kind = crd["spec"]["names"]["kind"]
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    path = f"/apis/{group}/v1/namespaces/{ns}/{plural}"

    def cr(name: str, size: int) -> dict:
        return {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": name}, "spec": {"size": size}}

    def script(s: Side) -> list:
        c = s.c
        out = []
        out.append(["create crd", status_of(c.post(crd_path, crd))])

        def established() -> bool:
            r = c.get(f"{crd_path}/{crd_name}")
            conds = {x["type"]: x["status"] for x in (r.body or {}).get("status", {}).get("conditions") or []}
            return conds.get("Established") == "True" and c.get(path).status == 200
        c.wait_for(established, 30, what="CRD established and served")
        for i in range(5):
            out.append([f"create w{i}", status_of(c.post(path, cr(f"w{i}", i + 1)))])
        out.append(["invalid", status_of(c.post(path, cr("bad", 0)))])
        r = c.get(path, {"limit": 2})
        out.append(["page 1", r.names, r.body["metadata"].get("remainingItemCount")])
        r = c.get(path, {"limit": 2, "continue": r.body["metadata"]["continue"]})
        out.append(["page 2", r.names])
        r = c.get(f"{path}/w1")
        rv = r.resource_version
        out.append(["get", status_of(r), r.body["spec"]])
        out.append(["patch", status_of(c.patch(f"{path}/w1", {"spec": {"size": 9}})),
                    c.get(f"{path}/w1").body["spec"]])
        body = r.body
        body["spec"]["size"] = 7
        out.append(["update stale", status_of(c.put(f"{path}/w1", body))])
        st = c.get(f"{path}/w1").body
        st["status"] = {"ready": True}
        r = c.put(f"{path}/w1/status", st)
        out.append(["status subresource", status_of(r), r.body.get("status")])
        with c.watch(path, {"resourceVersion": rv}, timeout=30) as w:
            evs = w.collect(10, until=lambda e: e["type"] == "MODIFIED" and e["object"].get("status"))
        out.append(["watch", [[e["type"], e["object"]["metadata"]["name"], e["object"]["spec"]] for e in evs]])
        out.append(["delete w0", status_of(c.delete(f"{path}/w0"))])
        out.append(["list", c.get(path).names])
        out.append(["cluster-wide list", c.get(f"/apis/{group}/v1/{plural}").names])
        out.append(["delete crd", status_of(c.delete(f"{crd_path}/{crd_name}"))])
        c.wait_for(lambda: c.get(f"{crd_path}/{crd_name}").status == 404, 60, what="CRD removed")
        out.append(["after crd deletion", c.get(path).status])
        return out

    e, k = main_pair.both(script)
    same(e, k, "CRD and custom resources")
    rows = {r[0]: r[1:] for r in e}
    assert rows["invalid"] == [[422, "Invalid"]], rows["invalid"]
    assert rows["update stale"] == [[409, "Conflict"]]
    assert rows["list"] == [["w1", "w2", "w3", "w4"]]
    assert rows["after crd deletion"] == [404]


# --------------------------------------------------------------------------------------------
# Controllers: Deployment -> ReplicaSet -> Pods, garbage collection, namespaces


def wait_pods(c: kube.RestClient, ns: str, app: str, n: int, timeout: float = 60) -> list[dict]:
    return c.wait_for(lambda: (lambda p: p if len(p) == n else None)(pods_of(c, ns, app)), timeout,
                      what=f"{n} pods of {app} in {ns}")


def test_deployment_makes_replicaset_and_pods(main_pair):
    ns = f"deploy-{RUN}"
    make_ns(main_pair, ns)
    dpath = f"/apis/apps/v1/namespaces/{ns}/deployments"

    def script(s: Side) -> dict:
        c = s.c
        out: dict[str, Any] = {}
        r = c.post(dpath, deployment_body("web", 3, "web"))
        out["create"] = status_of(r)
        pods = wait_pods(c, ns, "web", 3)
        rss = rs_of(c, ns, "web")
        out["replicasets"] = [[owners(rs), rs["spec"]["replicas"]] for rs in rss]
        rs_name = rss[0]["metadata"]["name"]
        out["pods"] = sorted([owners(p) == [f"ReplicaSet/{rs_name}/controller=True"], p["status"].get("phase"),
                              p["spec"].get("nodeName"), p["spec"]["serviceAccountName"]] for p in pods)
        c.wait_for(lambda: c.get(f"{dpath}/web").body.get("status", {}).get("replicas") == 3, 30,
                   what="deployment status.replicas = 3")
        st = c.get(f"{dpath}/web").body["status"]
        out["status"] = {k: st.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas",
                                                  "availableReplicas", "unavailableReplicas")}
        # Scale down through the scale subresource.
        r = c.patch(f"{dpath}/web/scale", {"spec": {"replicas": 1}})
        out["scale"] = [status_of(r), r.body["spec"]]
        wait_pods(c, ns, "web", 1)
        # A new template makes a second ReplicaSet.
        r = c.patch(f"{dpath}/web", {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}})
        out["rollout"] = status_of(r)
        c.wait_for(lambda: len(rs_of(c, ns, "web")) == 2, 60, what="second ReplicaSet")
        out["replicasets after rollout"] = len(rs_of(c, ns, "web"))
        # The controller recorded what it did as Events.
        c.wait_for(lambda: any(e.get("reason") == "ScalingReplicaSet" for e in c.get(f"{ns_path(ns)}/events").items),
                   30, what="ScalingReplicaSet event")
        return out

    e, k = main_pair.both(script)
    same(e, k, "Deployment, ReplicaSets and Pods")
    assert e["replicasets"] == [[["Deployment/web/controller=True"], 3]], e
    assert e["pods"] == [[True, "Pending", None, "default"]] * 3, e


@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
def test_garbage_collection(main_pair, policy):
    ns = f"gc-{policy.lower()}-{RUN}"
    make_ns(main_pair, ns)
    dpath = f"/apis/apps/v1/namespaces/{ns}/deployments"
    app = "gc"

    def script(s: Side) -> dict:
        c = s.c
        out: dict[str, Any] = {}
        assert c.post(dpath, deployment_body(app, 2, app)).status == 201
        wait_pods(c, ns, app, 2)
        rs_name = rs_of(c, ns, app)[0]["metadata"]["name"]
        r = c.delete(f"{dpath}/{app}", {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy})
        out["delete"] = status_of(r)
        if policy == "Foreground":
            # The owner stays, marked, until its dependents are gone (if GC has not finished yet).
            meta = (r.body or {}).get("metadata", {})
            out["delete answer"] = [bool(meta.get("deletionTimestamp")), meta.get("finalizers")]
        c.wait_for(lambda: c.get(f"{dpath}/{app}").status == 404, 60, what="deployment gone")
        if policy == "Orphan":
            # Give the GC time to (wrongly) delete, then check the dependents are there, unowned.
            def orphaned() -> bool:
                rss = rs_of(c, ns, app)
                return len(rss) == 1 and not rss[0]["metadata"].get("ownerReferences")
            c.wait_for(orphaned, 60, what="ReplicaSet orphaned")
            time.sleep(3)
            rss = rs_of(c, ns, app)
            out["after"] = [[r_["metadata"]["name"] == rs_name, owners(r_), r_["metadata"].get("finalizers")]
                            for r_ in rss]
            pods = pods_of(c, ns, app)
            out["pods"] = sorted(owners(p) == [f"ReplicaSet/{rs_name}/controller=True"] for p in pods)
        else:
            c.wait_for(lambda: not rs_of(c, ns, app), 60, what="ReplicaSet collected")
            c.wait_for(lambda: not pods_of(c, ns, app), 60, what="pods collected")
            out["after"] = [len(rs_of(c, ns, app)), len(pods_of(c, ns, app))]
        return out

    e, k = main_pair.both(script)
    same(e, k, f"garbage collection ({policy})")
    assert e["delete"] == [200, None], e
    if policy == "Orphan":
        assert e["after"] == [[True, [], None]] and e["pods"] == [True, True], e
    else:
        assert e["after"] == [0, 0], e


def test_namespace_deletion(main_pair):
    ns = f"nsdel-{RUN}"
    make_ns(main_pair, ns)

    def script(s: Side) -> dict:
        c = s.c
        out: dict[str, Any] = {}
        for i in range(5):
            assert c.post(f"{ns_path(ns)}/configmaps", cm_body(f"c{i}")).status == 201
        assert c.post(f"{ns_path(ns)}/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                                 "stringData": {"a": "b"}}).status == 201
        assert c.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment_body("d", 1, "d")).status == 201
        wait_pods(c, ns, "d", 1)
        r = c.delete(ns_path(ns))
        out["delete"] = [status_of(r), (r.body or {}).get("status", {}).get("phase")]
        out["create in terminating"] = status_of(c.post(f"{ns_path(ns)}/configmaps", cm_body("late")))
        t0 = time.monotonic()
        c.wait_for(lambda: c.get(ns_path(ns)).status == 404, 90, interval=0.5, what="namespace gone")
        out["seconds"] = time.monotonic() - t0
        out["after"] = [status_of(c.get(ns_path(ns))), c.get(f"{ns_path(ns)}/configmaps").names,
                        c.get(f"{ns_path(ns)}/pods").names]
        return out

    e, k = main_pair.both(script)
    harness.log(f"namespace deletion took {e['seconds']:.1f}s on etcd, {k['seconds']:.1f}s on kine")
    e.pop("seconds"), k.pop("seconds")
    same(e, k, "namespace deletion")
    assert e["delete"] == [[200, None], "Terminating"], e
    assert e["create in terminating"] == [403, "Forbidden"], e
    assert e["after"] == [[404, "NotFound"], [], []], e


def test_controller_manager_leader_lease(main_pair):
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"

    def script(s: Side) -> dict:
        c = s.c
        lease = c.wait_for(lambda: (lambda r: r.body if r.status == 200 else None)(
            c.get(f"{path}/kube-controller-manager")), 60, what="leader Lease")
        spec = lease["spec"]
        rv1, renew1 = lease["metadata"]["resourceVersion"], spec["renewTime"]
        # The leader renews every 2 s (retry period).
        later = c.wait_for(lambda: (lambda b: b if b["spec"]["renewTime"] != renew1 else None)(
            c.get(f"{path}/kube-controller-manager").body), 20, what="Lease renewed")
        idents = c.get(path, {"labelSelector": "apiserver.kubernetes.io/identity=kube-apiserver"})
        return {
            "holder": spec.get("holderIdentity", "").split("_")[0] != "",
            "duration": spec.get("leaseDurationSeconds"),
            "renewed": later["metadata"]["resourceVersion"] != rv1,
            "same holder": later["spec"]["holderIdentity"] == spec["holderIdentity"],
            "transitions": later["spec"].get("leaseTransitions"),
            "apiserver identity leases": len(idents.items),
        }

    e, k = main_pair.both(script)
    same(e, k, "leader-election Lease")
    assert e == {"holder": True, "duration": 15, "renewed": True, "same holder": True, "transitions": 0,
                 "apiserver identity leases": 1}, e


def test_events_expire_with_their_lease(main_pair):
    ns = f"events-{RUN}"
    make_ns(main_pair, ns)
    path = f"{ns_path(ns)}/events"

    def event(name: str) -> dict:
        return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
                "involvedObject": {"kind": "ConfigMap", "namespace": ns, "name": "x", "apiVersion": "v1"},
                "reason": "Testing", "message": f"event {name}", "type": "Normal", "source": {"component": "e2e"}}

    def script(s: Side) -> dict:
        c = s.c
        out: dict[str, Any] = {}
        t0 = time.monotonic()
        created = [c.post(path, event(f"e{i}")) for i in range(3)]
        out["create"] = [status_of(r) for r in created]
        # From the last Event's own resourceVersion, which the watch cache is sure to reach (the
        # store's newest revision may be another resource's, see the watch test).
        rv = created[-1].resource_version
        out["listed"] = c.get(path).names
        # In the store: the Event's key carries a lease granted for --event-ttl.
        r = harness.etcdctl(s.store, "get", f"/registry/events/{ns}/e0", "-w", "json")
        lease = json.loads(r.stdout)["kvs"][0].get("lease", 0) if r.returncode == 0 else 0
        r = harness.etcdctl(s.store, "lease", "timetolive", f"{lease:x}", "-w", "json")
        out["lease"] = [lease != 0, json.loads(r.stdout).get("granted-ttl") if r.returncode == 0 else r.stderr]
        out["events.k8s.io"] = c.get(f"/apis/events.k8s.io/v1/namespaces/{ns}/events").names
        with c.watch(path, {"resourceVersion": rv}, timeout=40) as w:
            c.wait_for(lambda: not c.get(path).names, 30, interval=0.5, what="events expired")
            gone = time.monotonic() - t0
            deleted = w.collect(10, until=lambda e: False, quiet=2)
        out["expired within"] = 4 <= gone <= 25
        out["seconds"] = gone
        out["watch"] = sorted([e["type"], e["object"]["metadata"]["name"]] for e in deleted)
        out["get"] = status_of(c.get(f"{path}/e0"))
        return out

    e, k = main_pair.both(script)
    harness.log(f"events expired after {e['seconds']:.1f}s on etcd, {k['seconds']:.1f}s on kine")
    e.pop("seconds"), k.pop("seconds")
    same(e, k, "Events and their TTL")
    assert e["listed"] == ["e0", "e1", "e2"] and e["expired within"] and e["lease"] == [True, 5], e
    assert e["watch"] == [["DELETED", "e0"], ["DELETED", "e1"], ["DELETED", "e2"]], e


def test_periodic_bookmarks(main_pair):
    """The module-long watch on every test's ConfigMaps (opened by the fixture, from "now"): the
    same events on both sides, and the watch cache's periodic bookmark (about once a minute),
    never older than the events before it. Waits for the first bookmark if the module has not
    run that long."""

    def script(s: Side) -> dict:
        w = main_pair.extra[f"watch-{s.name}"]
        evs: list[dict] = []
        deadline = main_pair.extra["watch-started"] + 100
        while time.monotonic() < deadline:
            e = w.next(max(0.1, deadline - time.monotonic()))
            if e is None:
                break
            evs.append(e)
            if e["type"] == "BOOKMARK":
                break
        evs += w.collect(1, quiet=0.5)  # anything already queued
        last_rv, bookmark_ok = 0, True
        for e in evs:
            if e["type"] == "ERROR":
                continue
            rv = int(e["object"]["metadata"]["resourceVersion"])
            if e["type"] == "BOOKMARK":
                bookmark_ok = bookmark_ok and rv >= last_rv
            last_rv = max(last_rv, rv)
        per_object: dict[str, list] = {}
        for e in evs:
            if e["type"] in ("ADDED", "MODIFIED", "DELETED"):
                m = e["object"]["metadata"]
                per_object.setdefault(f"{m['namespace']}/{m['name']}", []).append(e["type"])
        return {"bookmarks": sum(e["type"] == "BOOKMARK" for e in evs) >= 1, "bookmark rv ok": bookmark_ok,
                "errors": [describe_event(e) for e in evs if e["type"] == "ERROR"], "per object": per_object}

    e, k = main_pair.both(script)
    same(e, k, "the module-long watch")
    assert e["bookmarks"] and e["bookmark rv ok"] and not e["errors"], e
    assert e["per object"], "no ConfigMap events seen"


# --------------------------------------------------------------------------------------------
# Health and metrics


def test_readyz_and_livez(main_pair):
    def script(s: Side) -> dict:
        c = s.c
        out: dict[str, Any] = {}
        for p in ("/readyz", "/livez"):
            r = c.get(p, {"verbose": "1"})
            out[p] = [r.status, kube.readyz_checks(r.text)]
        for p in ("/readyz/etcd", "/readyz/poststarthook/storage-readiness", "/livez/etcd", "/healthz/etcd",
                  "/healthz"):
            r = c.get(p)
            out[p] = [r.status, r.text.strip()]
        r = c.get("/livez", {"exclude": "etcd", "verbose": "1"})
        out["livez exclude etcd"] = [r.status, "etcd" in kube.readyz_checks(r.text)]
        return out

    e, k = main_pair.both(script)
    same(e, k, "health checks")
    # v1.36's /readyz has no etcd check of its own: the store counts there through
    # storage-readiness (and informer-sync); /livez and /healthz have `etcd`.
    assert e["/readyz"][0] == 200 and e["/readyz"][1].get("poststarthook/storage-readiness") == "ok", e
    assert e["/readyz/poststarthook/storage-readiness"] == [200, "ok"], e
    assert e["/livez"][1].get("etcd") == "ok", e
    assert e["/livez/etcd"] == [200, "ok"], e


def test_apiserver_etcd_metrics(main_pair):
    def script(s: Side) -> dict:
        r = s.c.get("/metrics")
        assert r.status == 200
        fams = kube.metric_families(r.text)
        ops = {labels for labels, _ in kube.metric_samples(r.text, "etcd_request_duration_seconds_count")}
        ops = sorted({part.split("=")[1].strip('"') for lab in ops for part in lab.strip("{}").split(",")
                      if part.startswith("operation=")})
        return {
            # etcd_bookmark_total counts the store's progress notifications, which kine sends every
            # 5 s (--watch-progress-notify-interval) and etcd every 10 minutes: checked apart.
            "families": sorted(f for f in fams if f.startswith(("etcd_", "apiserver_storage_"))
                               and f != "etcd_bookmark_total"),
            "progress notifications": sum(v for _, v in kube.metric_samples(r.text, "etcd_bookmark_total")),
            # Storage requests that failed (none expected on either side): operation and type.
            "request errors": sorted(f"{labels} {v:g}" for labels, v in
                                     kube.metric_samples(r.text, "etcd_request_errors_total")),
            "operations": [o for o in ops if o in ("get", "list", "create", "update", "delete", "listWithCount")],
        }

    e, k = main_pair.both(script)
    e_pn, k_pn = e.pop("progress notifications"), k.pop("progress notifications")
    harness.log(f"etcd_bookmark_total: {e_pn} on etcd, {k_pn} on kine")
    if e["request errors"] != k["request errors"]:
        # What the logs say about it (printed with -s, and kept with KINE_E2E_KEEP=1).
        for s in main_pair.sides:
            lines = [l for l in s.api.log_text().splitlines() if l[:1] in "EW" and "createTransport" not in l]
            harness.log(f"--- {s.name} kube-apiserver E/W lines (last 40):\n" + "\n".join(lines[-40:]))
            lines = [l for l in s.store.log_tail(5000).splitlines() if " info " not in l]
            harness.log(f"--- {s.name} store log, not info (last 40):\n" + "\n".join(lines[-40:]))
    same(e, k, "apiserver etcd metrics")
    assert k_pn > 0, "kine sent the apiserver no progress notification"
    for name in ("etcd_request_duration_seconds", "apiserver_storage_objects", "etcd_requests_total"):
        assert name in e["families"], e
    assert {"get", "list", "create", "update"} <= set(e["operations"]), e


# --------------------------------------------------------------------------------------------
# The apiserver's compaction


def compacted(store: harness.Server, rev: int) -> bool:
    r = harness.etcdctl(store, "get", "/registry/namespaces/default", f"--rev={rev}", "--keys-only")
    return r.returncode != 0 and "compacted" in (r.stderr + r.stdout)


def test_apiserver_compaction(compaction_pair):
    ns = f"compact-{RUN}"
    make_ns(compaction_pair, ns)
    path = f"{ns_path(ns)}/configmaps"

    def script(s: Side) -> dict:
        c = s.c
        out: dict[str, Any] = {}
        for i in range(6):
            assert c.post(path, cm_body(f"c{i}")).status == 201
        r = c.get(path, {"limit": 2})
        cont = r.body["metadata"]["continue"]
        rv_old = int(r.resource_version)
        out["before"] = [status_of(c.get(path, {"limit": 2, "continue": cont})), compacted(s.store, rv_old)]
        for i in range(6, 10):
            assert c.post(path, cm_body(f"c{i}")).status == 201
        rv_new = int(c.get(path).resource_version)
        # The apiserver compacts, every 3 s, up to the revision it saw at the previous tick. Wait
        # until that is past rv_new, so that a watch from rv_old (which starts at rv_old + 1)
        # starts below the compacted revision for certain.
        t0 = time.monotonic()
        c.wait_for(lambda: compacted(s.store, rv_new), 30, interval=0.5, what=f"revision {rv_new} compacted")
        out["compacted after"] = time.monotonic() - t0
        r = c.get(path, {"limit": 2, "continue": cont})
        out["continue after compaction"] = [status_of(r), "continue parameter is too old" in r.text]
        with c.watch(path, {"resourceVersion": str(rv_old)}, timeout=10) as w:
            evs = w.collect(8, quiet=3)
        out["watch from compacted rv"] = [w.status, [describe_event(e) if "type" in e else
                                                     [e.get("code"), e.get("reason")] for e in evs]]
        r = c.get(path, {"resourceVersion": str(rv_old), "resourceVersionMatch": "Exact"})
        out["exact list at compacted rv"] = status_of(r)
        r = c.get(path, {"resourceVersion": str(rv_old), "resourceVersionMatch": "NotOlderThan"})
        out["not-older-than list at compacted rv"] = [status_of(r), len(r.names)]
        r = c.get(f"{path}/c0", {"resourceVersion": str(rv_old)})
        out["get at compacted rv"] = status_of(r)
        r = c.get(path, {"limit": 3})
        out["fresh list"] = [status_of(r), r.names]
        # The apiserver's compaction bookkeeping key.
        k = harness.etcdctl(s.store, "get", "compact_rev_key", "-w", "json")
        kv = json.loads(k.stdout)["kvs"][0] if k.returncode == 0 else {}
        out["compact_rev_key version >= 2"] = int(kv.get("version", 0)) >= 2
        return out

    e, k = compaction_pair.both(script)
    harness.log(f"compaction seen after {e.pop('compacted after'):.1f}s on etcd, "
                f"{k.pop('compacted after'):.1f}s on kine")
    same(e, k, "after the apiserver's compaction")
    assert e["before"] == [[200, None], False], e
    assert e["continue after compaction"] == [[410, "Expired"], True], e
    assert e["compact_rev_key version >= 2"], e
    assert e["watch from compacted rv"] == [200, [["ERROR", 410, "Expired"]]], e
    assert e["exact list at compacted rv"] == [410, "Expired"], e
    assert e["not-older-than list at compacted rv"] == [[200, None], 10], e
    # kine logs each compaction it runs (the apiserver's Compact requests).
    lines = [l for l in compaction_pair.kine.store.log_tail(2000).splitlines() if "compacted" in l]
    assert lines, compaction_pair.kine.store.log_tail()
    harness.log(f"kine logged {len(lines)} compactions, the last: {lines[-1]}")


# --------------------------------------------------------------------------------------------
# Unix sockets


def _wait_http_unix(sock: str, proc: harness.Server, timeout: float = 60) -> None:
    """Until GET /health answers over the unix socket (etcd and kine both serve it on their client
    port)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        if os.path.exists(sock):
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect(sock)
                conn = http.client.HTTPConnection("localhost", timeout=3)
                conn.sock = s
                conn.request("GET", "/health")
                r = conn.getresponse()
                body = r.read()
                conn.close()
                if r.status == 200:
                    return
                last = f"{r.status} {body[:200]!r}"
            except OSError as e:
                last = repr(e)
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} not answering on {sock} after {timeout}s: {last}\n{proc.log_tail()}")


def _spawn_in(cwd: Path, cmd: list[str], log_path: Path, env: dict) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        return subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


@pytest.fixture(scope="module")
def unix_pair(bins, postgres_url):
    stack = Stack()
    work = Path(tempfile.mkdtemp(prefix="kine-kube-unix-"))
    stack.add(lambda: shutil.rmtree(work, ignore_errors=True))
    try:
        # etcd 3.5.1 wants host:port in a unix URL and makes the socket file of that name in its
        # working directory: `unix://etcd.sock:0` run in `work` is work/etcd.sock:0, which
        # clients reach as unix:///abs/work/etcd.sock:0.
        esock, ksock = str(work / "etcd.sock:0"), str(work / "kine.sock")
        peer = f"http://127.0.0.1:{harness.free_port()}"
        ecmd = [harness.etcd35(), "--name", "unix-etcd", "--data-dir", str(work / "etcd-data"),
                "--listen-client-urls", "unix://etcd.sock:0", "--advertise-client-urls", "unix://etcd.sock:0",
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"unix-etcd={peer}", "--log-level", "warn"]
        env = {k: v for k, v in os.environ.items() if k != "ETCD_UNSUPPORTED_ARCH"}
        etcd = harness.Server("unix-etcd", "etcd3.5", f"unix://{esock}",
                              _spawn_in(work, ecmd, work / "etcd.log", env), work / "etcd.log")
        stack.add(etcd.stop)
        kurl = _kine_db(postgres_url, stack, "kube_unix")
        kcmd = [harness.kine_binary(), "--listen-address", f"unix://{ksock}", "--endpoint", kurl, kine_metrics_flag()]
        kine = harness.Server("unix-kine", "kine", f"unix://{ksock}",
                              _spawn_in(work, kcmd, work / "kine.log", dict(os.environ)), work / "kine.log")
        stack.add(kine.stop)
        _wait_http_unix(esock, etcd)
        _wait_http_unix(ksock, kine)
        stores = {"etcd": etcd, "kine": kine}
        apis = _start_pair_apiservers(stores, "unix", {"etcd": f"unix://{esock}", "kine": f"unix://{ksock}"}, [])
        for a in apis.values():
            stack.add(a.stop)
        yield Pair(*(Side(n, stores[n], apis[n]) for n in SIDES), extra={"sockets": {"etcd": esock, "kine": ksock}})
    finally:
        stack.close()


def test_apiserver_over_unix_socket(unix_pair):
    ns = f"unix-{RUN}"
    make_ns(unix_pair, ns)
    path = f"{ns_path(ns)}/configmaps"

    def script(s: Side) -> dict:
        c = s.c
        out: dict[str, Any] = {}
        out["etcd-servers"] = s.api.etcd_servers.startswith("unix:///")
        r = c.get("/livez", {"verbose": "1"})
        out["livez"] = [r.status, kube.readyz_checks(r.text).get("etcd")]
        out["readyz"] = c.get("/readyz").status
        out["create"] = status_of(c.post(path, cm_body("over-unix", {"a": "b"})))
        r = c.get(f"{path}/over-unix")
        out["get"] = [status_of(r), r.body.get("data")]
        out["update stale"] = status_of(c.put(f"{path}/over-unix", {**r.body, "data": {"a": "c"},
                                                                     "metadata": {**r.body["metadata"],
                                                                                  "resourceVersion": "1"}}))
        with c.watch(path, {"resourceVersion": r.resource_version}, timeout=20) as w:
            c.delete(f"{path}/over-unix")
            out["watch"] = [e["type"] for e in w.collect(10, until=lambda e: e["type"] == "DELETED")]
        return out

    e, k = unix_pair.both(script)
    same(e, k, "an apiserver over a unix socket")
    assert e == {"etcd-servers": True, "livez": [200, "ok"], "readyz": 200, "create": [201, None],
                 "get": [[200, None], {"a": "b"}], "update stale": [409, "Conflict"], "watch": ["DELETED"]}, e


def test_etcdctl_over_unix_socket(unix_pair):
    """etcdctl 3.5 sends `:authority` as the socket path etcd's gRPC-Go accepts; kine must too."""
    ns = f"unixctl-{RUN}"
    make_ns(unix_pair, ns)
    unix_pair.both(lambda s: s.c.post(f"{ns_path(ns)}/configmaps", cm_body("seen-by-etcdctl")))

    def script(s: Side) -> dict:
        sock = unix_pair.extra["sockets"][s.name]
        r = etcdctl_at(s.store, f"unix://{sock}", "get", "/", "--prefix", "-w", "json")
        kvs = json.loads(r.stdout).get("kvs") or [] if r.returncode == 0 else []
        keys = [base64.b64decode(kv["key"]).decode() for kv in kvs]
        r2 = etcdctl_at(s.store, f"unix://{sock}", "get", f"/registry/configmaps/{ns}/", "--prefix", "-w", "json")
        count = json.loads(r2.stdout).get("count") if r2.returncode == 0 else None
        r3 = etcdctl_at(s.store, f"unix://{sock}", "put", f"/e2e-unix/{RUN}", "v")
        r4 = etcdctl_at(s.store, f"unix://{sock}", "get", f"/e2e-unix/{RUN}", "--print-value-only")
        return {
            "get / --prefix": [r.returncode, r.stderr.strip()[-300:]],
            # What the apiserver wrote, with the random parts of names (its identity Lease, the
            # suffix of Event names) masked.
            "keys": sorted(re.sub(r"(/registry/events/.+\.)[0-9a-f]+$", r"\1*",
                                  re.sub(r"/apiserver-[a-z0-9]+$", "/apiserver-*", key)) for key in keys),
            "has the configmap": f"/registry/configmaps/{ns}/seen-by-etcdctl" in keys,
            "has namespaces": f"/registry/namespaces/{ns}" in keys and "/registry/namespaces/default" in keys,
            "count": count,
            "put": [r3.returncode, r3.stdout.strip()],
            "get": [r4.returncode, r4.stdout.strip()],
        }

    e, k = unix_pair.both(script)
    same(e, k, "etcdctl over a unix socket")
    assert e["get / --prefix"] == [0, ""] and e["has the configmap"] and e["count"] == 1, e
    assert len(e["keys"]) > 50, e["keys"]
