"""Memory of the embedded runtime: what a completed invocation keeps, what a key leaves behind, what an attempt
in flight costs, the garbage collector's share and whether the per-call cost stays flat as records pile up.

Run by hand from the repository root:

    python benchmarks/bench_memory.py                  # every row at its default size
    python benchmarks/bench_memory.py --rows retained,keys --n 20000
    python benchmarks/bench_memory.py --rows flat --flat-max 1000000    # the 1M row (minutes)

Each row runs in a fresh Python process (so one row's heap does not blur the next one's RSS), on a fresh
`pg.Runtime`, warmed up with a few hundred calls, then:

- retained (trivial call / distinct object keys): n sequential calls whose invocations are all still kept
  (retention is a day of virtual time); bytes per completed invocation, as RSS growth and as tracemalloc's
  count (two processes: tracemalloc's own bookkeeping would inflate the RSS); for the object row, how many
  inboxes and lock entries the n idle keys left.
- in flight: n one-way `service_send`s, all accepted before the loop runs any of them, so all n attempts are
  in flight together; then settle. Peak RSS growth (ru_maxrss) per send, and what stays per send afterwards.
- flat / GC: N sequential trivial calls; µs per call over the last 1,000 calls before 1k, 10k, 100k (and
  1M with --flat-max), and the share of the time spent in the garbage collector (gc.callbacks).

The targets (issue 17): at most 1.5 KB per completed invocation, no per-key leftovers, at most 8 KB per
attempt in flight, the GC's share under 5% at 100k, the per-call cost flat from 1k to 100k (1M).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402
from restate import Context, ObjectContext  # noqa: E402

import playground as pg  # noqa: E402

WARMUP = 300
PAGE = os.sysconf("SC_PAGE_SIZE")

greeter = restate.Service("MemGreeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return "Hello " + name


counter = restate.VirtualObject("MemCounter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value = (await ctx.get("value", type_hint=int) or 0) + delta
    ctx.set("value", value)
    return value


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


# ---------------------------------------------------------------------------------------------- rows (child side)


async def retained(kind: str, n: int, traced: bool) -> dict:
    rt = pg.Runtime(greeter, counter)

    async def call(i: int) -> None:
        if kind == "trivial":
            await rt.service_call(greet, arg="x")
        else:
            await rt.object_call(add, key=f"key-{i}", arg=1)

    for i in range(WARMUP):
        await call(-i - 1)
    gc.collect()
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = rss()
    for i in range(n):
        await call(i)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if traced else rss()
    kept = sum(1 for _ in rt.all_invocations())
    assert kept == n + WARMUP, kept
    keys = rt._keys
    # the objects' state (the user's data, one dict per key), counted apart: it stays as long as the key has state
    state = sum(sys.getsizeof(wk) + sys.getsizeof(wk[1]) + sys.getsizeof(d)
                + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items()) for wk, d in rt._state.items())
    return {"per_invocation": (after - before) / n, "inboxes": len(keys.inboxes), "locks": len(keys.locks),
            "state_per_key": state / max(1, len(rt._state))}


async def in_flight(n: int) -> dict:
    rt = pg.Runtime(greeter)
    for _ in range(WARMUP):
        await rt.service_call(greet, arg="x")
    gc.collect()
    base, peak_before = rss(), peak_rss()
    with GcTimer() as timer:
        t0 = time.perf_counter()
        for _ in range(n):
            await rt.service_send(greet, arg="x")  # accepted; the attempt runs once the loop gets control
        together = len(rt._attempts.runs)
        assert together >= n, together  # (the last warm-up attempt may still be winding down)
        await rt.settle()
        took = time.perf_counter() - t0
    peak = peak_rss()
    gc.collect()
    after = rss()
    assert peak > peak_before  # the sends' peak is the process's peak
    return {"peak_per_attempt": (peak - base) / n, "after_per_send": (after - base) / n, "together": together,
            "us_per_send": took / n * 1e6, "gc_share": sum(timer.seconds) / took}


async def in_flight_traced(n: int) -> dict:
    """The same sends under tracemalloc: the peak per attempt, split by who allocated it (the innermost frame
    in playground/, or elsewhere: the SDK, asyncio)."""
    rt = pg.Runtime(greeter)
    for _ in range(WARMUP):
        await rt.service_send(greet, arg="x")
        await rt.settle()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        await rt.service_send(greet, arg="x")
    peak, at_peak = 0, None
    while rt._attempts.runs:  # step the loop; keep the heap as it was at its largest
        await asyncio.sleep(0)
        now = tracemalloc.get_traced_memory()[0] - base
        if now > peak:
            peak, at_peak = now, tracemalloc.take_snapshot()
    await rt.settle()
    assert at_peak is not None
    ours = sum(d.size_diff for d in at_peak.compare_to(before, "filename")
               if f"{os.sep}playground{os.sep}" in d.traceback[0].filename)
    return {"peak_per_attempt": peak / n, "playground": ours / n, "others": (peak - ours) / n}


class GcTimer:
    """Time spent in the garbage collector, by generation (gc.callbacks), while installed."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def flat(n: int) -> dict:
    rt = pg.Runtime(greeter)
    for _ in range(WARMUP):
        await rt.service_call(greet, arg="x")
    gc.collect()

    marks = [m for m in (1_000, 10_000, 100_000, 1_000_000) if m <= n]
    windows: dict[str, float] = {}
    with GcTimer() as timer:
        t0 = time.perf_counter()
        window_start = t0
        for i in range(1, n + 1):
            if i in (m - 999 for m in marks):
                window_start = time.perf_counter()
            await rt.service_call(greet, arg="x")
            if i in marks:
                windows[f"{i:,}"] = (time.perf_counter() - window_start) / 1000 * 1e6
        total = time.perf_counter() - t0
    return {"us_at": windows, "gc_share": sum(timer.seconds) / total,
            "gc_by_gen": [g / total for g in timer.seconds], "total_s": total}


# ---------------------------------------------------------------------------------------------- parent side


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"row {args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def kb(b: float) -> str:
    return f"{b / 1024:,.2f} KB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="retained,keys,inflight,flat")
    p.add_argument("--n", type=int, default=10_000, help="calls per retained row (default 10,000)")
    p.add_argument("--inflight", type=int, default=10_000, help="sends in flight together (default 10,000)")
    p.add_argument("--flat-max", type=int, default=100_000, help="sequential calls of the flat row")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        row, *rest = a.child
        if row == "retained":
            result = asyncio.run(retained(rest[0], int(rest[1]), rest[2] == "traced"))
        elif row == "inflight":
            result = asyncio.run(in_flight(int(rest[0])))
        elif row == "inflight-traced":
            result = asyncio.run(in_flight_traced(int(rest[0])))
        else:
            result = asyncio.run(flat(int(rest[0])))
        print(json.dumps(result))
        return

    rows = a.rows.split(",")
    print(f"# bench_memory {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("| row | measured | target |\n|---|---|---|")
    for kind, row in (("trivial", "retained"), ("object", "keys")):
        if row not in rows:
            continue
        r = child(["retained", kind, str(a.n), "rss"])
        t = child(["retained", kind, str(a.n), "traced"])
        label = "trivial call" if kind == "trivial" else "object call, a new key each time"
        print(f"| kept per completed invocation, {label} (n={a.n:,}) | {kb(r['per_invocation'])} RSS, "
              f"{kb(t['per_invocation'])} traced | ≤ 1.5 KB |")
        if kind == "object":
            print(f"| of which each key's state (one dict, its key, one value) | {kb(r['state_per_key'])} | |")
            print(f"| inboxes / lock entries left by {a.n + WARMUP:,} idle keys | {r['inboxes']:,} / {r['locks']:,} "
                  f"| 0 / 0 |")
    if "inflight" in rows:
        r = child(["inflight", str(a.inflight)])
        t = child(["inflight-traced", str(a.inflight)])
        print(f"| peak per attempt, {a.inflight:,} service sends in flight | {kb(r['peak_per_attempt'])} RSS "
              f"({kb(r['after_per_send'])} of RSS not returned after); traced {kb(t['peak_per_attempt'])}: "
              f"playground {kb(t['playground'])}, the SDK and asyncio {kb(t['others'])} | ≤ 8 KB |")
        print(f"| time per send of those {a.inflight:,}, sent then settled | {r['us_per_send']:.0f} µs, "
              f"{r['gc_share']:.0%} of it in the GC | |")
    if "flat" in rows:
        r = child(["flat", str(a.flat_max)])
        per = ", ".join(f"{us:.0f} µs at {m}" for m, us in r["us_at"].items())
        print(f"| per call, sequential trivial calls (last 1,000 before each mark) | {per} | flat |")
        gens = " + ".join(f"{g:.1%}" for g in r["gc_by_gen"])
        print(f"| GC share of {a.flat_max:,} sequential calls ({r['total_s']:.1f} s) | {r['gc_share']:.1%} "
              f"(generations 0 + 1 + 2: {gens}) | < 5% |")


if __name__ == "__main__":
    main()
