"""The same handlers on both engines in one run: the embedded runtime and a real Restate server.

Run by hand from the repository root (the real server is installed from npm on first use):

    python benchmarks/compare_real.py                  # n=200 calls per row, 1,000 delayed sends
    python benchmarks/compare_real.py --n 50 --sends 200

Rows (wall-clock time, time.perf_counter; the real rows go through the HTTP ingress with urllib from one
thread, as a user's script would; the handlers run in this process on both engines):

- cold start to first result (the first run in the process only): embedded, `pg.Runtime(...)` to the first
  `service_call` result, imports already done; real, starting
  `restate-server` (binary already installed) + serving the app + registering it + the first ingress call.
- sequential ingress call: `greet`, one call after another (each call row after `--warmup` untimed calls,
  default 50, on both engines).
- service-to-service call: a handler calling `greet` (two invocations per call).
- object get + set: `add` on one virtual object key (state read and written).
- delayed sends: `--sends` one-way sends, each delayed by 1 h on the playground (then the virtual clock
  skips ahead) and by `--real-delay` (default 1 s) on the real server (8 threads sending), until every
  one has run.

The last column is real / embedded. `measure()` is also run with tiny numbers by tests/real (no timing
assertions).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as _dt
import importlib.metadata
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402

import playground as pg  # noqa: E402
from playground import real  # noqa: E402

greeter = restate.Service("CmpGreeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return "Hello " + name


caller = restate.Service("CmpCaller")


@caller.handler()
async def call_greet(ctx: restate.Context, name: str) -> str:
    return await ctx.service_call(greet, arg=name)


counter = restate.VirtualObject("CmpCounter")


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    value = (await ctx.get("value", type_hint=int) or 0) + delta
    ctx.set("value", value)
    return value


ticks = restate.Service("CmpTicks")
TICKS = {"n": 0}


@ticks.handler()
async def tick(ctx: restate.Context) -> None:
    TICKS["n"] += 1


SERVICES = [greeter, caller, counter, ticks]


# --------------------------------------------------------------------------------------------- embedded
async def _embedded(n: int, sends: int, warmup: int = 0) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    rt = pg.Runtime(*SERVICES)
    await rt.service_call(greet, arg="first")
    out["cold"] = time.perf_counter() - t0

    for key, call in (("call", lambda: rt.service_call(greet, arg="x")),
                      ("s2s", lambda: rt.service_call(call_greet, arg="x")),
                      ("object", lambda: rt.object_call(add, key="k", arg=1))):
        for _i in range(warmup):
            await call()
        t0 = time.perf_counter()
        for _i in range(n):
            await call()
        out[key] = (time.perf_counter() - t0) / n

    TICKS["n"] = 0
    t0 = time.perf_counter()
    for _ in range(sends):
        await rt.service_send(tick, send_delay=timedelta(hours=1))
    await rt.advance(timedelta(hours=1))
    assert TICKS["n"] == sends, TICKS
    out["sends"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------------------------- real
def _real(n: int, sends: int, real_delay: timedelta, warmup: int = 0) -> dict[str, float]:
    out: dict[str, float] = {}
    real.find_server_binary()  # install outside the timing
    t0 = time.perf_counter()
    server = real.RestateServer().start()
    app = real.serve(*SERVICES)
    try:
        server.register(app.url)
        assert server.call("CmpGreeter", "greet", "first") == "Hello first"
        out["cold"] = time.perf_counter() - t0

        for key, call in (("call", lambda: server.call("CmpGreeter", "greet", "x")),
                          ("s2s", lambda: server.call("CmpCaller", "call_greet", "x")),
                          ("object", lambda: server.call("CmpCounter", "add", 1, key="k"))):
            for _i in range(warmup):
                call()
            t0 = time.perf_counter()
            for _i in range(n):
                call()
            out[key] = (time.perf_counter() - t0) / n

        TICKS["n"] = 0
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: server.send("CmpTicks", "tick", delay=real_delay), range(sends)))
        deadline = time.monotonic() + 120
        while TICKS["n"] < sends:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {TICKS['n']} of {sends} delayed sends ran within 120 s")
            time.sleep(0.01)
        out["sends"] = time.perf_counter() - t0
    finally:
        app.stop()
        server.stop()
    return out


def measure(n: int = 200, sends: int = 1000, real_delay: timedelta = timedelta(seconds=1),
            warmup: int = 0) -> dict[str, Any]:
    embedded = asyncio.run(_embedded(n, sends, warmup))
    on_server = _real(n, sends, real_delay, warmup)
    return {"embedded": embedded, "real": on_server, "n": n, "sends": sends, "real_delay": real_delay}


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def table(result: dict[str, Any]) -> str:
    e, r = result["embedded"], result["real"]
    delay_ms = int(result["real_delay"].total_seconds() * 1000)
    rows = [
        ("cold start to first result", "cold"),
        ("sequential ingress call (per call)", "call"),
        ("service-to-service call (per call)", "s2s"),
        ("object get + set (per call)", "object"),
        (f"{result['sends']:,} delayed sends until all ran (1 h virtual / {delay_ms} ms real)", "sends"),
    ]
    lines = ["| workload | playground | real server | real / playground |", "|---|---|---|---|"]
    for label, key in rows:
        lines.append(f"| {label} | {_fmt(e[key])} | {_fmt(r[key])} | {r[key] / e[key]:.1f}x |")
    return "\n".join(lines)


PER_CALL_TARGET = 50.0  # real / playground per call, the target of the per-call work (issue 17)


def verdict(result: dict[str, Any]) -> str:
    """Whether each per-call row is at least PER_CALL_TARGET times faster than the real server."""
    e, r = result["embedded"], result["real"]
    parts = []
    for label, key in (("ingress call", "call"), ("service-to-service", "s2s"), ("object get + set", "object")):
        q = r[key] / e[key]
        parts.append(f"{label} {q:.1f}x ({'OK' if q >= PER_CALL_TARGET else 'BELOW'})")
    return f"per call, real / playground (target >= {PER_CALL_TARGET:.0f}x): " + ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="calls per call row")
    ap.add_argument("--sends", type=int, default=1000)
    ap.add_argument("--real-delay", type=float, default=1.0, help="seconds of delay for the real server's sends")
    ap.add_argument("--repeat", type=int, default=1, help="runs; the table shows the median of each cell")
    ap.add_argument("--warmup", type=int, default=50, help="untimed calls before each call row, on both engines")
    args = ap.parse_args()
    runs = [measure(args.n, args.sends, timedelta(seconds=args.real_delay), args.warmup) for _ in range(args.repeat)]
    result = dict(runs[0])
    for side in ("embedded", "real"):
        result[side] = {k: statistics.median(run[side][k] for run in runs) for k in runs[0][side]}
        result[side]["cold"] = runs[0][side]["cold"]  # only the first run in this process is cold
    print(f"# {_dt.date.today()} {platform.python_implementation()} {platform.python_version()}, "
          f"restate-sdk {importlib.metadata.version('restate-sdk')}, "
          f"restate-server {real.SERVER_VERSION}, n={args.n}, warm-up={args.warmup}, repeat={args.repeat}")
    print(table(result))
    print()
    print(verdict(result))


if __name__ == "__main__":
    main()
