#!/usr/bin/env python3
"""Turns scripts/bench.sh results (kine-bench JSON, check perf output, machine.json) into the
generated part of docs/benchmarks.md and the PNG plots.

    report.py RESULTS_DIR OUTPUT_MD PLOT_DIR

Only the text between the GENERATED markers of OUTPUT_MD is replaced; everything else (the
hand-written analysis) is kept. A missing file gets a skeleton. The main results (scenarios.txt) and
the watch results (watch-scenarios.txt, issue 3) and the two-node HA results (RESULTS_DIR/ha/, written
by Benchmarks/Tools/ha_bench.py) have their own markers, so `bench.sh --only watch` and `--only ha`
rewrite only their part.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import sys

BEGIN = "<!-- BEGIN GENERATED (scripts/bench.sh) -->"
END = "<!-- END GENERATED -->"
WATCH_BEGIN = "<!-- BEGIN GENERATED WATCH (scripts/bench.sh) -->"
WATCH_END = "<!-- END GENERATED WATCH -->"
HA_BEGIN = "<!-- BEGIN GENERATED HA (scripts/bench.sh --only ha) -->"
HA_END = "<!-- END GENERATED HA -->"

# Targets of issue 5: (label, scenario, kind, threshold). kind: "tput" = kine/etcd req/s >= t,
# "lat" = kine/etcd p50 latency <= t.
TARGETS = [
    ("put, 64 concurrent streams", "put-64", "tput", 1.0),
    ("single-client put latency (p50)", "put-1", "lat", 1.5),
    ("range of one key (64 clients, linearizable)", "range-l-64", "tput", 1.0),
    ("list of a 500-key page", "list-16", "tput", 0.5),
    ("txn compare-and-swap (64 clients)", "cas-64", "tput", 1.0),
]


def load(results: str) -> tuple[dict, list[tuple[str, str]], dict, dict]:
    machine = json.load(open(os.path.join(results, "machine.json")))
    scenarios = []
    for line in open(os.path.join(results, "scenarios.txt")):
        line = line.strip()
        if line:
            name, _, args = line.partition("|")
            scenarios.append((name, args))
    data: dict[str, dict] = {}
    for name, _ in scenarios:
        data[name] = {}
        for target in ("kine", "etcd", "rss"):
            path = os.path.join(results, f"{name}.{target}.json")
            if os.path.exists(path):
                try:
                    data[name][target] = json.load(open(path))
                except json.JSONDecodeError:
                    data[name][target] = {"available": True, "failed": True, "reason": "unreadable output"}
    checks = {}
    for fname in sorted(os.listdir(results)):
        m = re.match(r"checkperf-(\w+)\.(kine|etcd)\.txt$", fname)
        if m:
            text = open(os.path.join(results, fname)).read()
            checks[(m.group(1), m.group(2))] = text
    return machine, scenarios, data, checks


def ok(r: dict | None) -> bool:
    return bool(r) and r.get("available", False) and not r.get("failed") and r.get("succeeded", 0) > 0


def fmt_rate(r: dict | None) -> str:
    if not r:
        return "–"
    if not r.get("available", True):
        return "not available"
    if r.get("failed") or r.get("succeeded", 0) == 0:
        return "failed"
    s = f"{r['requestsPerSecond']:,.0f}"
    if r.get("errors"):
        s += f" ({r['errors']} err)"
    return s


def fmt_lat(r: dict | None) -> str:
    if not ok(r) or not r.get("latencyMs"):
        return "–"
    l = r["latencyMs"]
    return f"{l['p50']:.2f} / {l['p99']:.2f} / {l['max']:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "–"


def failure_note(name, target, r):
    """The report line for a run that was not available or had errors, else None."""
    if r and not r.get("available", True):
        return f"- {name} on {target}: not available ({r.get('reason', '')})"
    if r and (r.get("failed") or r.get("errors")):
        samples = r.get("errorSamples") or [r.get("reason", "")]
        return f"- {name} on {target}: {r.get('errors', 'all')} errors, e.g. `{str(samples[0])[:200]}`"
    return None


def tput_ratio(k, e) -> float | None:
    if ok(k) and ok(e) and e["requestsPerSecond"]:
        return k["requestsPerSecond"] / e["requestsPerSecond"]
    return None


def lat_ratio(k, e) -> float | None:
    if ok(k) and ok(e) and e["latencyMs"]["p50"]:
        return k["latencyMs"]["p50"] / e["latencyMs"]["p50"]
    return None


def check_summary(text: str) -> str:
    lines = [l.strip() for l in text.splitlines()
             if re.match(r"\s*(PASS|FAIL)", l) or re.match(r"\s*Slowest request took too long", l)]
    lines = [l for l in lines if l != "FAIL" and l != "PASS"]
    code = re.search(r"exit code: (\d+)", text)
    verdict = "PASS" if lines and not any("FAIL" in l for l in lines) and code and code.group(1) == "0" else "FAIL"
    if not lines:
        tail = " ".join(text.strip().splitlines()[-3:])[:300]
        return f"**{verdict}** (no result lines; exit {code.group(1) if code else '?'}: {tail})"
    return f"**{verdict}**: " + "; ".join(l.replace("PASS: ", "").replace("FAIL: ", "FAIL ") for l in lines)


def plots(scenarios, data, plot_dir: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    os.makedirs(plot_dir, exist_ok=True)
    made = []
    names = [n for n, _ in scenarios if ok(data[n].get("kine")) or ok(data[n].get("etcd"))]
    if names:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        xs = range(len(names))
        width = 0.4
        for offset, target, color in ((-width / 2, "etcd", "#4c72b0"), (width / 2, "kine", "#dd8452")):
            vals = [data[n][target]["requestsPerSecond"] if ok(data[n].get(target)) else 0 for n in names]
            ax.bar([x + offset for x in xs], vals, width, label=target, color=color)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel("requests/s (log)")
        ax.set_yscale("log")
        ax.set_title("Throughput, kine vs etcd 3.5 (same machine, same run)")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = os.path.join(plot_dir, "throughput.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)

    lat_names = [n for n in ("put-1", "put-64", "range-l-64", "cas-64", "list-16", "watch-latency-16") if n in data]
    lat_names = [n for n in lat_names if ok(data[n].get("kine")) and ok(data[n].get("etcd"))]
    if lat_names:
        pcts = ["p50", "p90", "p99", "p999"]
        cols = min(3, len(lat_names))
        rows = (len(lat_names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.3 * rows), squeeze=False)
        flat = [ax for row in axes for ax in row]
        for ax in flat[len(lat_names):]:
            ax.axis("off")
        for ax, n in zip(flat, lat_names):
            for target, color, marker in (("etcd", "#4c72b0", "o"), ("kine", "#dd8452", "s")):
                l = data[n][target]["latencyMs"]
                ax.plot(["p50", "p90", "p99", "p99.9"], [l[p] for p in pcts], marker=marker, color=color, label=target)
            ax.set_yscale("log")
            ax.set_title(n)
            ax.grid(alpha=0.3)
        for row in axes:
            row[0].set_ylabel("latency, ms (log)")
        axes[0][0].legend()
        fig.suptitle("Latency percentiles")
        fig.tight_layout()
        path = os.path.join(plot_dir, "latency.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


def generate(results: str, out_md: str, plot_dir: str) -> str:
    machine, scenarios, data, checks = load(results)
    made = plots(scenarios, data, plot_dir)
    o = []
    o.append(f"Generated by `scripts/bench.sh` on {machine['date']}" + (" (**--quick**: totals / 5)" if machine.get("quick") else "") + ".")
    o.append("")
    o.append("### Machine")
    o.append("")
    o.append("| | |")
    o.append("|---|---|")
    for key, label in (("nproc", "cores (nproc)"), ("cpu", "CPU"), ("memory", "memory"), ("os", "OS"), ("kernel", "kernel"),
                       ("swift", "Swift"), ("etcd", "etcd"), ("postgres", "PostgreSQL"), ("kine", "kine commit")):
        o.append(f"| {label} | {machine.get(key, '?')} |")
    o.append("")
    if machine.get("analyze", 1):
        o.append("Both servers got the same 5000-put warm-up; then the kine table was `ANALYZE`d (see finding 1 below).")
    else:
        o.append("Both servers got the same 5000-put warm-up; the kine table was **not** `ANALYZE`d (BENCH_ANALYZE=0).")
    o.append("")
    o.append("Client, etcd, kine and PostgreSQL all share these cores; every number is one run, so expect")
    o.append("±10-20 % between runs on this 2-core VM (other work on the machine included).")
    o.append("")
    o.append("### Results")
    o.append("")
    o.append("Latency columns are p50 / p99 / max in ms. Ratios are kine/etcd: throughput (≥ 1 = kine faster) and")
    o.append("p50 latency (≤ 1 = kine faster).")
    o.append("")
    o.append("| scenario | kine-bench flags | etcd req/s | kine req/s | kine/etcd req/s | etcd latency | kine latency | kine/etcd p50 |")
    o.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, args in scenarios:
        e, k = data[name].get("etcd"), data[name].get("kine")
        tr = tput_ratio(k, e)
        lr = lat_ratio(k, e)
        o.append(
            f"| {name} | `{args}` | {fmt_rate(e)} | {fmt_rate(k)} | {f'{tr:.2f}x' if tr is not None else '–'} | "
            f"{fmt_lat(e)} | {fmt_lat(k)} | {f'{lr:.2f}x' if lr is not None else '–'} |")
    o.append("")
    notes = []
    for name, _ in scenarios:
        for target in ("kine", "etcd"):
            r = data[name].get(target)
            note = failure_note(name, target, r)
            if note:
                notes.append(note)
            extra = (r or {}).get("extra") or {}
            if target == "kine" and extra.get("cas_failures"):
                notes.append(f"- {name}: {extra['cas_failures']} CAS compare failures on kine")
    if notes:
        o.append("Notes:")
        o.extend(notes)
        o.append("")

    o.append("### Targets (issue 5)")
    o.append("")
    o.append("| target | scenario | goal | measured | met? |")
    o.append("|---|---|---:|---:|---|")
    for label, name, kind, threshold in TARGETS:
        d = data.get(name, {})
        if kind == "tput":
            v = tput_ratio(d.get("kine"), d.get("etcd"))
            goal = f"≥ {threshold:.1f}x"
            met = v is not None and v >= threshold
        else:
            v = lat_ratio(d.get("kine"), d.get("etcd"))
            goal = f"≤ {threshold:.1f}x"
            met = v is not None and v <= threshold
        o.append(f"| {label} | {name} | {goal} | {f'{v:.2f}x' if v is not None else 'n/a'} | {'yes' if met else '**no**'} |")
    cp = checks.get(("l", "kine"))
    if cp is not None:
        verdict = check_summary(cp)
        o.append(f"| `etcdctl check perf --load=l` passes | check perf | PASS | {verdict.split(':')[0]} | {'yes' if verdict.startswith('**PASS') else '**no**'} |")
    idle_mb = machine["kineRssIdleKb"] / 1024
    o.append(f"| RSS when idle | – | ≤ 64 MB | {idle_mb:.1f} MB | {'yes' if idle_mb <= 64 else '**no**'} |")
    o.append("")

    if checks:
        o.append("### etcdctl check perf")
        o.append("")
        o.append("| load | target | result |")
        o.append("|---|---|---|")
        for (ld, target), text in sorted(checks.items(), key=lambda kv: (["s", "m", "l", "xl"].index(kv[0][0]) if kv[0][0] in ("s", "m", "l", "xl") else 9, kv[0][1])):
            o.append(f"| {ld} | {target} | {check_summary(text)} |")
        o.append("")

    o.append("### Memory (RSS)")
    o.append("")
    o.append("| | kine | etcd |")
    o.append("|---|---:|---:|")
    o.append(f"| idle, after start | {machine['kineRssIdleKb'] / 1024:.1f} MB | {machine['etcdRssIdleKb'] / 1024:.1f} MB |")
    o.append(f"| peak (VmHWM) over the whole run | {machine['kinePeakRssKb'] / 1024:.1f} MB | {machine['etcdPeakRssKb'] / 1024:.1f} MB |")
    o.append(f"| after the run, idle again | {machine['kineRssAfterKb'] / 1024:.1f} MB | {machine.get('etcdRssAfterKb', 0) / 1024:.1f} MB |")
    for key, label in (("l", "after check perf l"), ("xl", "after check perf xl")):
        r = machine.get("checkPerfRss", {}).get(key)
        if r:
            o.append(f"| {label} | {r['kine'] / 1024:.1f} MB | {r['etcd'] / 1024:.1f} MB |")
    rss_rows = [(n, data[n].get("rss")) for n, _ in scenarios if data[n].get("rss")]
    if rss_rows:
        o.append("")
        o.append("RSS right after each scenario (MB, kine / etcd): " + ", ".join(
            f"{n} {r['kineRssKb'] / 1024:.0f} / {r['etcdRssKb'] / 1024:.0f}" for n, r in rss_rows) + ".")
    o.append("")
    for path in made:
        rel = os.path.relpath(path, os.path.dirname(os.path.abspath(out_md)) or ".")
        o.append(f"![{os.path.basename(path)}]({rel})")
        o.append("")
    return "\n".join(o)


def load_watch(results: str) -> tuple[list[tuple[str, str]], dict]:
    scenarios = []
    for line in open(os.path.join(results, "watch-scenarios.txt")):
        line = line.strip()
        if line:
            name, _, args = line.partition("|")
            scenarios.append((name, args))
    data: dict[str, dict] = {}
    for name, _ in scenarios:
        data[name] = {}
        for key, fname in (("kine", "kine"), ("etcd", "etcd"), ("kine_cpu", "kine.cpu"), ("etcd_cpu", "etcd.cpu")):
            path = os.path.join(results, f"{name}.{fname}.json")
            if os.path.exists(path):
                try:
                    data[name][key] = json.load(open(path))
                except json.JSONDecodeError:
                    data[name][key] = {"available": True, "failed": True, "reason": "unreadable output"}
    return scenarios, data


def cpu_seconds(c: dict | None, key: str) -> float | None:
    if not c:
        return None
    return c.get(key, 0) / (c.get("clkTck") or 100)


def generate_watch(results: str, out_md: str, plot_dir: str) -> str:
    machine = json.load(open(os.path.join(results, "machine.json")))
    scenarios, data = load_watch(results)
    by_cmd: dict[str, list[str]] = {}
    for name, args in scenarios:
        by_cmd.setdefault(args.split()[0] + (" put-endpoints" if "--put-endpoints" in args else "")
                          + (" rate" if "--rate" in args and args.startswith("watch-fanout") else ""), []).append(name)

    def first(kind: str) -> str | None:
        names = by_cmd.get(kind) or []
        return names[0] if names else None

    o = []
    o.append(f"Generated by `scripts/bench.sh{' --only watch' if machine.get('only') == 'watch' else ''}` on {machine['date']}"
             + (" (**--quick**: totals / 5)" if machine.get("quick") else "")
             + f"; kine {machine.get('kine', '?')}, {machine.get('etcd', 'etcd ?').replace('etcd Version: ', 'etcd ')}, PostgreSQL {machine.get('postgres', '?')}, "
             + f"{machine.get('nproc', '?')} cores shared by client, servers and PostgreSQL.")
    o.append("")
    o.append("| measure | goal | etcd | kine | kine/etcd | met? |")
    o.append("|---|---|---:|---:|---:|---|")

    def lat_row(name: str | None, label: str, goal_ms: float, etcd_note: str = "") -> None:
        if not name:
            return
        e, k = data[name].get("etcd"), data[name].get("kine")
        def cell(r):
            if not ok(r) or not r.get("latencyMs"):
                return fmt_rate(r)
            l = r["latencyMs"]
            return f"{l['p50']:.2f} / {l['p99']:.2f} ms"
        rat = "–"
        if ok(e) and ok(k) and e.get("latencyMs") and k.get("latencyMs"):
            rat = f"{ratio(k['latencyMs']['p50'], e['latencyMs']['p50'])} / {ratio(k['latencyMs']['p99'], e['latencyMs']['p99'])}"
        met = "–"
        if goal_ms and ok(k) and k.get("latencyMs"):
            met = "yes" if k["latencyMs"]["p99"] <= goal_ms else f"**no** (p99 {k['latencyMs']['p99']:.1f} ms)"
        goal = f"p99 ≤ {goal_ms:g} ms" if goal_ms else "–"
        o.append(f"| {label} | {goal} | {cell(e)}{etcd_note} | {cell(k)} | {rat} | {met} |")

    lat_row(first("watch-latency"), "put→event p50 / p99, **local writes** (watcher and writer on one server)", 5)
    lat_row(first("watch-latency put-endpoints"),
            "put→event p50 / p99, **writes through another process** (kine: Put on a 2nd kine, watch on the 1st)", 20,
            " ¹")
    fan = first("watch-fanout")
    if fan:
        e, k = data[fan].get("etcd"), data[fan].get("kine")
        tr = tput_ratio(k, e)
        o.append(f"| events/s delivered to 1,000 watchers (writers unlimited) | – | {fmt_rate(e)} | {fmt_rate(k)} | "
                 f"{f'{tr:.2f}x' if tr is not None else '–'} | – |")
        def puts(r):
            return f"{r['extra'].get('puts_per_second', 0):,}" if ok(r) else "–"
        pr = (k["extra"]["puts_per_second"] / e["extra"]["puts_per_second"]) if ok(k) and ok(e) and e["extra"].get("puts_per_second") else None
        o.append(f"| … the Puts/s behind them | – | {puts(e)} | {puts(k)} | {f'{pr:.2f}x' if pr is not None else '–'} | – |")
        def cpu_per_event(target: str) -> str:
            r, c = data[fan].get(target), data[fan].get(f"{target}_cpu")
            if not ok(r) or not c or not r.get("succeeded"):
                return "–"
            server = cpu_seconds(c, "serverCpuTicks") / r["succeeded"] * 1e6
            if target == "kine":
                pg = cpu_seconds(c, "pgCpuTicks") / r["succeeded"] * 1e6
                return f"{server:.2f} µs (+ PostgreSQL {pg:.2f})"
            return f"{server:.2f} µs"
        o.append(f"| server CPU per delivered event | – | {cpu_per_event('etcd')} | {cpu_per_event('kine')} | – | – |")
    lat_row(first("watch-fanout"), "put→delivery p50 / p99 with 1,000 watchers, writers unlimited", 0)
    lat_row(first("watch-fanout rate"), "put→delivery p50 / p99 with 1,000 watchers, 200 Puts/s", 0)
    fans = (by_cmd.get("watch-fanout") or []) + (by_cmd.get("watch-fanout rate") or [])
    if fans:
        def loss(target: str) -> str:
            parts = []
            for n in fans:
                r = data[n].get(target)
                if not ok(r):
                    parts.append("–")
                    continue
                x = r["extra"]
                parts.append(f"{x.get('events_missing', 0)} / {x.get('events_extra', 0)} / {x.get('out_of_order', 0)}")
            return ", ".join(parts)
        def lossless(target: str) -> bool:
            return all(ok(data[n].get(target)) and not any(data[n][target]["extra"].get(k) for k in
                       ("events_missing", "events_extra", "out_of_order", "watches_canceled")) for n in fans)
        o.append(f"| events missing / extra / out of order ({', '.join(fans)}) | 0 | {loss('etcd')} | {loss('kine')} | – | "
                 f"{'yes' if lossless('kine') else '**no**'} |")
    mem = first("watch-memory")
    if mem:
        e, k = data[mem].get("etcd"), data[mem].get("kine")
        for key, label in (("bytes_per_watch", "memory per watch, 10,000 watches on 100 streams (RSS growth / 10,000)"),
                           ("bytes_per_stream", "… per stream with its first watch"),
                           ("bytes_per_extra_watch", "… per further watch on an open stream")):
            ev = e["extra"].get(key) if ok(e) else None
            kv = k["extra"].get(key) if ok(k) else None
            o.append(f"| {label} | – | {f'{ev:,} B' if ev is not None else fmt_rate(e)} | {f'{kv:,} B' if kv is not None else fmt_rate(k)} | "
                     f"{ratio(kv, ev) if kv is not None and ev else '–'} | – |")
        def tenk(r):
            if not ok(r):
                return "–"
            x = r["extra"]
            return f"{(x['rss_watches_kb'] - x['rss_idle_kb']) / 1024:.1f} MB"
        o.append(f"| … RSS growth for all 10,000 watches | – | {tenk(e)} | {tenk(k)} | – | – |")
        tr = tput_ratio(k, e)
        o.append(f"| watches created per second (9,900 on open streams) | – | {fmt_rate(e)} | {fmt_rate(k)} | "
                 f"{f'{tr:.2f}x' if tr is not None else '–'} | – |")
    o.append("")
    o.append("¹ etcd has no second process: its figure is the single member with Puts and watches on the same server "
             "(the same measurement as the row above, run again).")
    o.append("")
    o.append("Where the put→event time goes (means over all Puts: the Put's own round trip, then how long after the "
             "Put's response the event arrived; negative = before it):")
    o.append("")
    o.append("| scenario | etcd Put round trip | etcd event after response | kine Put round trip | kine event after response | kine events before the response |")
    o.append("|---|---:|---:|---:|---:|---:|")
    for name, args in scenarios:
        if not args.startswith("watch-latency"):
            continue
        cells = []
        for target in ("etcd", "kine"):
            r = data[name].get(target)
            if ok(r) and "put_us_sum" in r.get("extra", {}):
                n = r["succeeded"]
                cells += [f"{r['extra']['put_us_sum'] / n / 1000:.2f} ms", f"{r['extra']['event_after_ack_us_sum'] / n / 1000:+.2f} ms"]
            else:
                cells += ["–", "–"]
        k = data[name].get("kine")
        before = f"{k['extra'].get('events_before_ack', 0) / k['succeeded'] * 100:.0f} %" if ok(k) and "events_before_ack" in k.get("extra", {}) else "–"
        o.append(f"| {name} | " + " | ".join(cells) + f" | {before} |")
    o.append("")
    o.append("Every run (latency p50 / p99 / max in ms; CPU = seconds the server used during the run, kine's both "
             "processes, and this PostgreSQL):")
    o.append("")
    o.append("| scenario | kine-bench flags | etcd rate | kine rate | etcd latency | kine latency | etcd CPU | kine CPU + PostgreSQL |")
    o.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, args in scenarios:
        e, k = data[name].get("etcd"), data[name].get("kine")
        ec, kc = data[name].get("etcd_cpu"), data[name].get("kine_cpu")
        unit = " ev/s" if args.startswith("watch-fanout") else (" watches/s" if args.startswith("watch-memory") else " puts/s")
        def rate(r):
            v = fmt_rate(r)
            return v + unit if ok(r) else v
        ecpu = f"{cpu_seconds(ec, 'serverCpuTicks'):.2f} s" if ec else "–"
        kcpu = f"{cpu_seconds(kc, 'serverCpuTicks'):.2f} + {cpu_seconds(kc, 'pgCpuTicks'):.2f} s" if kc else "–"
        o.append(f"| {name} | `{args}` | {rate(e)} | {rate(k)} | {fmt_lat(e)} | {fmt_lat(k)} | {ecpu} | {kcpu} |")
    o.append("")
    notes = []
    for name, _ in scenarios:
        for target in ("etcd", "kine"):
            r = data[name].get(target)
            note = failure_note(name, target, r)
            if note:
                notes.append(note)
            x = (r or {}).get("extra") or {}
            if x.get("watchers_incomplete"):
                notes.append(f"- {name} on {target}: {x['watchers_incomplete']} watchers missed events "
                             f"({x.get('events_missing', 0)} events in all)")
    if notes:
        o.append("Notes:")
        o.extend(notes)
        o.append("")
    return "\n".join(o)


# ---- two-node HA (ha_bench.py) ----------------------------------------------------------------------

HA_TARGETS = [
    ("etcd-1", "etcd, 1 member"), ("etcd-3", "etcd, 3 members"), ("kine", "kine, single node"),
    ("sync-leader", "pair sync, via leader"), ("sync-follower", "pair sync, via follower"),
    ("async-leader", "pair async, via leader"), ("async-follower", "pair async, via follower"),
]


def _load_json(path: str):
    try:
        return json.load(open(path))
    except (OSError, json.JSONDecodeError):
        return None


def _mmm(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "–"
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def _cpu_us_per_op(r: dict | None) -> str:
    if not ok(r) or not r.get("cpu"):
        return "–"
    c = r["cpu"]
    n = r["succeeded"]
    server = sum(v for k, v in c.items() if not k.startswith("pg")) / n * 1e6
    pg = sum(v for k, v in c.items() if k.startswith("pg")) / n * 1e6
    return f"{server:.0f}" + (f" + {pg:.0f}" if any(k.startswith("pg") for k in c) else "")


def generate_ha(results: str) -> str:
    machine = json.load(open(os.path.join(results, "machine.json")))
    scenarios = _load_json(os.path.join(results, "scenarios.json")) or []
    data = {}
    for sc in scenarios:
        for target, _ in HA_TARGETS:
            r = _load_json(os.path.join(results, f"{sc['name']}.{target}.json"))
            if r is not None:
                data[(sc["name"], target)] = r
    failover = {m: _load_json(os.path.join(results, f"failover.{m}.json")) for m in ("sync", "async")}
    resync = _load_json(os.path.join(results, "resync.json"))
    opts = machine.get("haOptions", {})
    o = []
    o.append(f"Generated by `scripts/bench.sh --only ha` on {machine['date']}"
             + (" (**--quick**: kine-bench totals / 5)" if machine.get("quick") else "")
             + f"; kine {machine.get('kine', '?')}, {machine.get('etcd', 'etcd ?').replace('etcd Version: ', 'etcd ')}, "
             + f"{machine.get('postgres', 'PostgreSQL ?').replace('postgres (PostgreSQL) ', 'PostgreSQL ')}; "
             + f"{machine.get('nproc', '?')} cores shared by every client, server and PostgreSQL of the run; "
             + f"the run took {machine.get('runtimeS', '?')} s (load average before it: {' '.join(machine.get('loadAverageStart', []))}).")
    o.append("")
    o.append("HA flags of both nodes: `" + " ".join(f"{k} {v}" for k, v in opts.items()) + "` (the defaults are liveness 5s, "
             "probe interval 1s, hold-down 30s, startup grace 10s: with them expect a failover to take about 2.5 s longer).")
    o.append("")

    def r_of(name, target):
        return data.get((name, target))

    # ---- goals
    o.append("| goal | measured | met? |")
    o.append("|---|---|---|")
    e3 = r_of("put-64", "etcd-3")
    for target in ("sync-leader", "sync-follower"):
        k = r_of("put-64", target)
        tr = tput_ratio(k, e3)
        o.append(f"| put-64 through the sync pair ({target.split('-')[1]}) ≥ 3-member etcd | "
                 f"{fmt_rate(k)} vs {fmt_rate(e3)} req/s = {f'{tr:.2f}x' if tr is not None else 'n/a'} | "
                 f"{'yes' if tr is not None and tr >= 1 else '**no**'} |")
    e3p = r_of("put-1", "etcd-3")
    for target in ("sync-leader", "sync-follower"):
        k = r_of("put-1", target)
        lr = lat_ratio(k, e3p)
        o.append(f"| put-1 p50 through the sync pair ({target.split('-')[1]}) ≤ 3-member etcd | "
                 f"{k['latencyMs']['p50'] if ok(k) else '–'} vs {e3p['latencyMs']['p50'] if ok(e3p) else '–'} ms = "
                 f"{f'{lr:.2f}x' if lr is not None else 'n/a'} | {'yes' if lr is not None and lr <= 1 else '**no**'} |")
    if resync:
        v = resync.get("resyncS")
        o.append(f"| a fresh follower of {resync['keys']:,} keys is a ready follower ≤ 30 s | "
                 f"{f'{v:.1f} s' if v is not None else 'not within 120 s'} | {'yes' if v is not None and v <= 30 else '**no**'} |")
    fs = failover.get("sync")
    if fs:
        lost = sum(r.get("lostAcked", 0) for r in fs["runs"])
        acked = sum(r.get("ackedOldEpoch", 0) for r in fs["runs"])
        o.append(f"| sync: no acknowledged write lost in a failover | {lost} of {acked:,} lost | {'yes' if lost == 0 else '**no**'} |")
    o.append("")

    # ---- failover
    o.append("#### Failover: kill -9 of the leader's kine and PostgreSQL together")
    o.append("")
    o.append(f"Writers Put new keys continuously through both nodes ({machine.get('writerThreads', '?')} sequential "
             "clients per node, `Benchmarks/Tools/ha_writer.py`, 2 s per Put timeout, retry at once). **Failover time** = "
             "from the kill to the first acknowledged Put through the survivor at a revision above the new epoch start. "
             "**Lost** = Puts acknowledged at an old-epoch revision that are not in the new leader's table. After each run "
             "the dead node is restarted and follows (**rejoin** = its PostgreSQL start until the pair is ready again, "
             "sync standby included); the next run kills the other node.")
    o.append("")
    o.append("| mode | runs | failover s (min / median / max) | writes acked before the kill | lost acked writes | "
             "survivor's status showed the new leader after, s | rejoin s (min / median / max) | rows the returning node saved as split writes |")
    o.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in ("sync", "async"):
        f = failover.get(mode)
        if not f:
            continue
        runs = f["runs"]
        times = [r["failoverMs"] / 1000 for r in runs if r.get("failoverMs") is not None]
        failed = len(runs) - len(times)
        promo = [r["promotionObservedMs"] / 1000 for r in runs if r.get("promotionObservedMs") is not None]
        rejoin = [r["rejoinS"] for r in runs if r.get("rejoinS") is not None]
        saved = [str(r["savedRowsOfThisRun"]) + (f" ({r['lostFoundInSaved']} of them lost acked writes)" if r.get("lostFoundInSaved") else "")
                 for r in runs if r.get("savedRowsOfThisRun") is not None]
        o.append(f"| {mode} | {len(runs)}{f' ({failed} failed)' if failed else ''} | {_mmm(times)} | "
                 f"{sum(r.get('ackedOldEpoch', 0) for r in runs):,} | {sum(r.get('lostAcked', 0) for r in runs)} | "
                 f"{_mmm(promo)} | {_mmm(rejoin)} | {', '.join(map(str, saved)) or '–'} |")
    o.append("")
    o.append("Every run (times in ms after the kill; the survivor's failed Puts as start→end:code):")
    o.append("")
    o.append("| mode | run | killed | first write via survivor | writes/s before | acked before | lost | survivor's status (ms: role) and probe rounds | survivor's failed Puts |")
    o.append("|---|---:|---|---:|---:|---:|---:|---|---|")
    for mode in ("sync", "async"):
        f = failover.get(mode)
        if not f:
            continue
        for r in f["runs"]:
            tl = "; ".join(f"{p[0]}: {p[1]}" for p in r.get("statusTimeline", []))
            rounds = r.get("probeRounds", [])
            failed_rounds = [x[0] for x in rounds if x[0] > 0 and not x[1] and not x[2]]
            if failed_rounds:
                tl += f"; rounds failing on both channels ended at {', '.join(map(str, failed_rounds))}"
            fails = ", ".join(f"{a}→{b}:{c[:5]}" for a, b, c in r.get("survivorFailures", [])[:8])
            more = len(r.get("survivorFailures", [])) - 8
            fo = r.get("failoverMs")
            o.append(f"| {mode} | {r['run']} | {r['killed']} | {f'{fo:.0f}' if fo is not None else r.get('error', 'none')} | "
                     f"{r.get('acksPerSecondBeforeKill', '–')} | {r.get('ackedOldEpoch', '–')} | {r.get('lostAcked', '–')} | "
                     f"{tl} | {fails}{f' (+{more})' if more > 0 else ''} |")
    o.append("")

    # ---- writes
    o.append("#### Writes: the pair against single-node kine and etcd 3.5 (1 and 3 members)")
    o.append("")
    o.append("The pair's kine-bench runs inside a node's namespace against that node's kine (`127.0.0.1:2379`); the "
             "follower routes every request to the leader's PostgreSQL over the veth. Single-node kine runs on node a's "
             "PostgreSQL (same settings, its own database, no HA flags). The three-member etcd gets kine-bench's "
             "connections spread over its three members (put-1: the first member). Latency is p50 / p99 ms. CPU is "
             "µs of CPU per Put: server processes (etcd: all members; the pair: both kines) + PostgreSQL (both).")
    o.append("")
    targets = [(t, l) for t, l in HA_TARGETS if any((sc["name"], t) in data for sc in scenarios if sc["name"].startswith("put"))]
    o.append("| | " + " | ".join(l for _, l in targets) + " |")
    o.append("|---|" + "---:|" * len(targets))
    for sc in scenarios:
        if not sc["name"].startswith("put"):
            continue
        name = sc["name"]
        o.append(f"| **{name}** req/s | " + " | ".join(fmt_rate(r_of(name, t)) for t, _ in targets) + " |")
        o.append(f"| {name} latency | " + " | ".join(
            (f"{r_of(name, t)['latencyMs']['p50']:.2f} / {r_of(name, t)['latencyMs']['p99']:.2f}" if ok(r_of(name, t)) else "–")
            for t, _ in targets) + " |")
        o.append(f"| {name} vs etcd 3 members (req/s) | " + " | ".join(
            (f"{tput_ratio(r_of(name, t), r_of(name, 'etcd-3')):.2f}x" if tput_ratio(r_of(name, t), r_of(name, 'etcd-3')) is not None else "–")
            for t, _ in targets) + " |")
        o.append(f"| {name} vs single-node kine (req/s) | " + " | ".join(
            (f"{tput_ratio(r_of(name, t), r_of(name, 'kine')):.2f}x" if tput_ratio(r_of(name, t), r_of(name, 'kine')) is not None else "–")
            for t, _ in targets) + " |")
        o.append(f"| {name} CPU µs/Put | " + " | ".join(_cpu_us_per_op(r_of(name, t)) for t, _ in targets) + " |")
    o.append("")
    o.append("kine-bench flags: " + "; ".join(f"{sc['name']}: `{sc['args']}`" for sc in scenarios) + ".")
    o.append("")

    # ---- reads
    reads = [sc for sc in scenarios if sc["name"].startswith("range")]
    if reads:
        o.append("#### Reads on the follower and on the leader (sync pair)")
        o.append("")
        o.append("Serializable reads (`range-s`) are answered from the node's own read cache; linearizable ones "
                 "(`range-l`) check the leader's database first (the follower: over the veth).")
        o.append("")
        o.append("| scenario | kine, single node | pair, leader | pair, follower | follower / leader | latency single / leader / follower (p50 / p99 ms) |")
        o.append("|---|---:|---:|---:|---:|---|")
        for sc in reads:
            n = sc["name"]
            k, l, f = r_of(n, "kine"), r_of(n, "sync-leader"), r_of(n, "sync-follower")
            tr = tput_ratio(f, l)
            o.append(f"| {n} | {fmt_rate(k)} | {fmt_rate(l)} | {fmt_rate(f)} | {f'{tr:.2f}x' if tr is not None else '–'} | "
                     + " · ".join(f"{x['latencyMs']['p50']:.2f} / {x['latencyMs']['p99']:.2f}" if ok(x) else "–" for x in (k, l, f)) + " |")
        o.append("")

    # ---- resync
    if resync:
        o.append(f"#### Resync: a fresh follower of {resync['keys']:,} keys")
        o.append("")
        o.append(f"Node a leads alone; {resync.get('keys_loaded', '?'):,} keys ({resync.get('rows', '?'):,} rows, "
                 f"{resync.get('tableMB', '?')} MB with indexes, 256-byte values) are loaded through it in {resync.get('loadS', '?')} s "
                 f"(`{resync.get('load', '')}`, {resync.get('loadPutsPerSecond', 0):,} Puts/s); then kine b starts on an empty "
                 "database. Seconds after b's start at which its `kine ha status` first showed each role / subscription state:")
        o.append("")
        states = resync.get("states", {})
        o.append("| " + " | ".join(states) + " | leader's sync standby on | tables equal (count + md5) |")
        o.append("|" + "---:|" * (len(states) + 2))
        o.append("| " + " | ".join(f"{v:.2f}" for v in states.values())
                 + f" | {resync.get('syncActiveS', '–')} | {resync.get('tablesEqual', '–')} |")
        o.append("")
    notes = list(machine.get("notes") or [])
    foreign = machine.get("foreignNamespaces") or {}
    if foreign:
        labs: dict[str, list[float]] = {}
        for ns, (a, b) in foreign.items():
            tag = ns[:-1] if ns[-1:] in ("a", "b") else ns  # kha<tag>a / kha<tag>b = one lab
            w = labs.setdefault(tag, [a, b])
            w[0], w[1] = min(w[0], a), max(w[1], b)
        phases = ", ".join(f"{p} {s}-{e} s" for p, (s, e) in (machine.get("phaseTimes") or {}).items())
        notes.append("**the machine was shared**: another HA lab (network namespaces "
                     + ", ".join(f"{t}a/b seen {a}-{b} s into the run" for t, (a, b) in sorted(labs.items()))
                     + f", sampled every 2 s) ran on the same cores; this run's phases: {phases}")
    for mode in ("sync", "async"):
        f = failover.get(mode)
        for r in (f or {}).get("runs", []):
            if r.get("revisionMismatch"):
                notes.append(f"{mode} run {r['run']}: {r['revisionMismatch']} acked writes are in the table at another revision")
    for (name, target), r in sorted(data.items()):
        note = failure_note(name, target, r)
        if note:
            notes.append(note[2:])
    if notes:
        o.append("Notes from the run:")
        o.extend(f"- {n}" for n in notes)
        o.append("")
    return "\n".join(o)


SKELETON = """# Benchmarks: kine vs etcd

How to run: `scripts/bench.sh` (see its header). The load generator is `Benchmarks/Sources/kine-bench`.

{begin}
{end}
"""


def replace_block(text: str, begin: str, end: str, generated: str) -> str:
    if begin not in text or end not in text:
        text = text.rstrip() + "\n\n" + begin + "\n" + end + "\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    return head + begin + "\n" + generated + "\n" + end + tail


def has_lines(path: str) -> bool:
    return os.path.exists(path) and any(line.strip() for line in open(path))


def main() -> None:
    results, out_md, plot_dir = sys.argv[1:4]
    if os.path.exists(out_md):
        text = open(out_md).read()
    else:
        text = SKELETON.format(begin=BEGIN, end=END)
    if has_lines(os.path.join(results, "scenarios.txt")):
        text = replace_block(text, BEGIN, END, generate(results, out_md, plot_dir))
    if has_lines(os.path.join(results, "watch-scenarios.txt")):
        text = replace_block(text, WATCH_BEGIN, WATCH_END, generate_watch(results, out_md, plot_dir))
    if os.path.exists(os.path.join(results, "ha", "machine.json")):
        text = replace_block(text, HA_BEGIN, HA_END, generate_ha(os.path.join(results, "ha")))
    open(out_md, "w").write(text)


if __name__ == "__main__":
    main()
