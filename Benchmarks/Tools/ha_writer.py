#!/usr/bin/env python3
"""A continuous etcd writer for the HA failover benchmark (Benchmarks/Tools/ha_bench.py).

    ha_writer.py --endpoint 127.0.0.1:2379 --stubs DIR --prefix P --threads N --out FILE

Each thread Puts its own new keys (P<thread>/<seq>) one after another and records every
acknowledged Put: (CLOCK_MONOTONIC ns at the response, key, header.revision). A failed or
timed-out Put is counted and the next attempt uses a new key, so "acknowledged" is exact: only
keys this writer saw a response for are listed. Prints "ready" on stdout after the first
acknowledged Put; with --ack-log every ack is also appended to that file at once (the
caller watches it for the first write of a new epoch); on SIGTERM it stops, writes FILE (JSON) and exits.

Runs inside a lab namespace (`ip netns exec`), where kine listens on 127.0.0.1:2379; the
timestamps are comparable with the caller's time.monotonic_ns() (one clock for the machine).
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--stubs", required=True, help="directory with the generated etcd Python stubs")
    p.add_argument("--prefix", required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--timeout", type=float, default=2.0, help="per-Put timeout, seconds")
    p.add_argument("--value-size", type=int, default=256)
    p.add_argument("--out", required=True)
    p.add_argument("--ack-log", help="also append 'MONO_NS KEY REVISION' per acknowledged Put here, as they come")
    args = p.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc

    rpc = importlib.import_module("etcd.etcdserverpb.rpc_pb2")
    rpc_grpc = importlib.import_module("etcd.etcdserverpb.rpc_pb2_grpc")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    value = b"v" * args.value_size
    acks: list[list] = []
    errors: list[int] = [0]
    samples: list[str] = []
    first_error_ns: list[int] = []
    failures: list[list] = []   # [start ns, end ns, code], the first 400
    lock = threading.Lock()
    ready = threading.Event()
    ack_log = open(args.ack_log, "a", buffering=1) if args.ack_log else None

    def run(thread: int) -> None:
        channel = grpc.insecure_channel(args.endpoint)
        kv = rpc_grpc.KVStub(channel)
        seq = 0
        mine = []
        while not stop.is_set():
            key = f"{args.prefix}{thread}/{seq:08d}"
            seq += 1
            begin = time.monotonic_ns()
            try:
                r = kv.Put(rpc.PutRequest(key=key.encode(), value=value), timeout=args.timeout)
                now = time.monotonic_ns()
                mine.append([now, key, r.header.revision])
                if ack_log:
                    with lock:
                        ack_log.write(f"{now} {key} {r.header.revision}\n")
                ready.set()
            except grpc.RpcError as e:
                now = time.monotonic_ns()
                with lock:
                    errors[0] += 1
                    if not first_error_ns:
                        first_error_ns.append(now)
                    if len(samples) < 5:
                        samples.append(f"{e.code().name}: {e.details()}"[:200])
                    if len(failures) < 400:
                        failures.append([begin, now, e.code().name])
                time.sleep(0.005)  # a refused connection fails at once; do not spin
        channel.close()
        with lock:
            acks.extend(mine)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(args.threads)]
    for t in threads:
        t.start()
    while not stop.is_set():
        if ready.wait(0.05):
            print("ready", flush=True)
            break
    stop.wait()
    for t in threads:
        t.join(args.timeout + 3)
    acks.sort()
    with open(args.out, "w") as f:
        json.dump({"acks": acks, "errors": errors[0], "errorSamples": samples,
                   "firstErrorNs": first_error_ns[0] if first_error_ns else None, "failures": sorted(failures),
                   "unfinishedThreads": sum(t.is_alive() for t in threads)}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
