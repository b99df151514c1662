"""How long the tables take, run by hand: `python benchmarks/bench_tables.py [--invocations 100000]`.

Targets: `rt.invocations()` over 100,000 invocations in under 250 ms, `rt.journal(id)` of a 10,000-entry
journal in under 20 ms, and `rt.sql` building only the tables its query names (a count over sys_invocation
costs what rt.invocations() costs, not every table). Each row is the median of --repeat runs."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402

import playground as pg  # noqa: E402

svc = restate.Service("TabSvc")
obj = restate.VirtualObject("TabObj")


@svc.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"hi {name}"


@svc.handler()
async def flaky(ctx: restate.Context, n: int) -> int:
    if n % 2:
        raise restate.TerminalError("odd", 400)
    return n


@obj.handler()
async def many_entries(ctx: restate.ObjectContext, n: int) -> int:
    for i in range(n):  # one SetState command each
        ctx.set(f"k{i % 50}", i)
    return n


async def build(invocations: int, entries: int) -> tuple[pg.Runtime, str]:
    """A runtime keeping `invocations` completed invocations (some failed), one with `entries` journal entries."""
    rt = pg.Runtime(svc, obj)
    await rt.object_call(many_entries, key="big", arg=entries - 2)  # + Input + Output
    big = next(iter(rt.all_invocations())).id
    batch = 1000
    for start in range(1, invocations, batch):
        calls = [rt.service_call(greet, arg=str(i)) if i % 10 else rt.service_call(flaky, arg=i)
                 for i in range(start, min(start + batch, invocations))]
        await asyncio.gather(*calls, return_exceptions=True)
    return rt, big


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


async def measure(invocations: int = 100_000, entries: int = 10_000, repeat: int = 5) -> dict[str, float]:
    rt, big = await build(invocations, entries)
    assert len(rt.invocations()) == invocations and len(rt.journal(big)) == entries
    return {
        f"rt.invocations() ({invocations:,} invocations)": median_ms(rt.invocations, repeat),
        f"rt.journal(id) ({entries:,} entries)": median_ms(lambda: rt.journal(big), repeat),
        "rt.sql: count(*) from sys_invocation": median_ms(
            lambda: rt.sql("select count(*) from sys_invocation"), repeat),
        "rt.sql: count(*) from sys_service": median_ms(lambda: rt.sql("select count(*) from sys_service"), repeat),
    }


TARGETS_MS = {"rt.invocations()": 250.0, "rt.journal(id)": 20.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invocations", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    t0 = time.perf_counter()
    results = asyncio.run(measure(args.invocations, args.entries, args.repeat))
    print(f"(built in {time.perf_counter() - t0:.0f} s; median of {args.repeat} runs each)")
    for name, ms in results.items():
        target = next((t for prefix, t in TARGETS_MS.items() if name.startswith(prefix)), None)
        verdict = f"  target under {target:.0f} ms: {'OK' if ms < target else 'ABOVE'}" if target else ""
        print(f"{name:48s} {ms:9.1f} ms{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
