"""What the SQLite store costs over the in-memory default, per invocation.

Run by hand from the repository root:

    python benchmarks/bench_store.py                  # 15 paired rounds of 200 calls per row
    python benchmarks/bench_store.py --rounds 30 --n 300 --only trivial

Each row runs the same handler on two runtimes side by side, one in memory and one on a fresh SQLite file,
in short alternating rounds (memory, then SQLite) timed in CPU time (time.process_time), so drift on a
shared machine hits both alike; the row's figure is the median of the rounds' ratios. Beside it: how many
transactions the store committed and how many bytes the process wrote (the `wchar` of /proc/self/io: the
WAL frames, checkpoints into the main file, and nothing else in this loop) per invocation of the SQLite leg.

Targets (issue 17): at most 1.3x on the trivial call and on the object get+set call, at most 2x for a
handler doing 100 `ctx.set`. The service-to-service row has no target; it is shown for comparison.

This file is imported by tests/test_bench_store_smoke.py (with a tiny n): keep `paired()` and `ROWS`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402
from restate import Context, ObjectContext  # noqa: E402

import playground as pg  # noqa: E402

# ---------------------------------------------------------------------------------------------- services
greeter = restate.Service("StoreBenchGreeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return "Hello " + name


counter = restate.VirtualObject("StoreBenchCounter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value = (await ctx.get("value", type_hint=int) or 0) + delta
    ctx.set("value", value)
    return value


@counter.handler()
async def set_many(ctx: ObjectContext, n: int) -> int:
    for i in range(n):
        ctx.set(f"s{i}", i)
    return n


caller = restate.Service("StoreBenchCaller")


@caller.handler()
async def call_greet(ctx: Context, name: str) -> str:
    return await ctx.service_call(greet, arg=name)


SERVICES = (greeter, counter, caller)


@dataclass
class Row:
    key: str
    label: str
    target: float | None  # (None: shown for comparison, no target)
    call: Callable[[pg.Runtime], Awaitable[object]]
    expect: object


ROWS = [
    Row("trivial", "trivial ingress call", 1.3, lambda rt: rt.service_call(greet, arg="x"), "Hello x"),
    Row("object", "object call, get + set", 1.3, lambda rt: rt.object_call(add, key="k", arg=0), 0),
    Row("set100", "object call, 100 ctx.set", 2.0, lambda rt: rt.object_call(set_many, key="m", arg=100), 100),
    Row("s2s", "service-to-service (2 invocations)", None, lambda rt: rt.service_call(call_greet, arg="x"),
        "Hello x"),
]
BY_KEY = {r.key: r for r in ROWS}


@dataclass
class Paired:
    row: Row
    ratios: list[float] = field(default_factory=list)
    memory_us: list[float] = field(default_factory=list)
    sqlite_us: list[float] = field(default_factory=list)
    commits: float = 0.0  # transactions per invocation (SQLite leg)
    written: float | None = None  # bytes written per invocation (SQLite leg), None where /proc/self/io is missing

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def _wchar() -> int | None:
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return None


async def paired(row: Row, n: int, rounds: int, warmup: int = 50, directory: str | None = None) -> Paired:
    """`rounds` alternating rounds of `n` calls, memory then SQLite; CPU time, so both legs drift alike."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        mem = pg.Runtime(*SERVICES)
        disk = pg.Runtime(*SERVICES, store=os.path.join(tmp, "bench.sqlite"))
        try:
            for rt in (mem, disk):
                for _ in range(warmup):
                    got = await row.call(rt)
                if got != row.expect:
                    raise AssertionError(f"{row.key}: unexpected result {got!r}")
            out = Paired(row)
            commits = written = 0
            gc.collect()
            for _ in range(rounds):
                t0 = time.process_time()
                for _ in range(n):
                    await row.call(mem)
                t1 = time.process_time()
                c0, w0 = _store_commits(disk), _wchar()
                t2 = time.process_time()
                for _ in range(n):
                    await row.call(disk)
                t3 = time.process_time()
                c1, w1 = _store_commits(disk), _wchar()
                commits += c1 - c0
                if w0 is not None and w1 is not None:
                    written += w1 - w0
                out.memory_us.append((t1 - t0) / n * 1e6)
                out.sqlite_us.append((t3 - t2) / n * 1e6)
                out.ratios.append((t3 - t2) / max(t1 - t0, 1e-9))
            out.commits = commits / (n * rounds)
            out.written = written / (n * rounds) if _wchar() is not None else None
            return out
        finally:
            mem.close()
            disk.close()


def _store_commits(rt: pg.Runtime) -> int:
    return getattr(rt._store, "commits", 0)


def format_table(results: list[Paired]) -> str:
    head = (f"{'row':<36} {'memory µs':>10} {'sqlite µs':>10} {'ratio':>6} {'q1–q3':>11} {'target':>7} "
            f"{'commits':>8} {'written':>9}")
    lines = [head, "-" * len(head)]
    for p in results:
        q = statistics.quantiles(p.ratios, n=4) if len(p.ratios) > 1 else [p.ratio, p.ratio, p.ratio]
        target = "-" if p.row.target is None else f"<={p.row.target}x"
        ok = "" if p.row.target is None else "ok" if p.ratio <= p.row.target else "ABOVE"
        written = f"{p.written / 1024:.1f} KB" if p.written is not None else "?"
        lines.append(f"{p.row.label:<36} {statistics.median(p.memory_us):>10.0f} "
                     f"{statistics.median(p.sqlite_us):>10.0f} {p.ratio:>5.2f}x {q[0]:>5.2f}–{q[2]:<5.2f} "
                     f"{target:>7} {p.commits:>8.2f} {written:>9}  {ok}")
    return "\n".join(lines)


def machine() -> str:
    import sqlite3
    return (f"{platform.python_implementation()} {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
            f"{_dt.datetime.now().astimezone().isoformat(timespec='seconds')}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="calls per round and leg (default 200)")
    p.add_argument("--rounds", type=int, default=15, help="paired rounds per row (default 15)")
    p.add_argument("--only", nargs="+", choices=list(BY_KEY), help="run only these rows")
    p.add_argument("--dir", help="where the SQLite file goes (default: the system's temporary directory)")
    args = p.parse_args(argv)
    print(f"restate-playground store benchmark: {args.rounds} paired rounds x {args.n} calls per row")
    print(machine())
    t0 = time.perf_counter()
    results = []
    for row in ROWS:
        if args.only is None or row.key in args.only:
            print(f"  running {row.key} ...", file=sys.stderr, flush=True)
            results.append(asyncio.run(paired(row, args.n, args.rounds, directory=args.dir)))
    print()
    print(format_table(results))
    print(f"(total wall time {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
