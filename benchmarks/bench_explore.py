"""What exploring schedules costs, run by hand: `python benchmarks/bench_explore.py`.

1. Exhaustive exploration of the ordering page's example (issue 15: a handler sends "call A" then "call B" to
   a key while the scenario sends "C" to it): the wall time, and how many schedules it ran. Target: under 1 s.
2. Random exploration of small scenarios: schedules per second. Target: 200 or more. The scenario grows (more
   concurrent senders to one key) to show the cost per schedule as it does.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402

import playground as pg  # noqa: E402

logbook = restate.VirtualObject("BenchLogbook")


@logbook.handler()
async def write(ctx: restate.ObjectContext, line: str) -> None:
    lines = await ctx.get("lines") or []
    ctx.set("lines", [*lines, line])


alice = restate.Service("BenchAlice")


@alice.handler()
async def send_two(ctx: restate.Context, key: str) -> None:
    ctx.object_send(write, key=key, arg="call A")
    ctx.object_send(write, key=key, arg="call B")


async def example(rt):
    await rt.service_send(send_two, arg="Ann")
    await rt.object_send(write, key="Ann", arg="C")


def senders(n):
    async def scenario(rt):
        for _ in range(n):
            await rt.service_send(send_two, arg="Ann")
        await rt.object_send(write, key="Ann", arg="C")
    return scenario


def lines(rt):
    return tuple(rt.state("BenchLogbook", "Ann")["lines"])


async def timed(scenario, strategy, runs, repeat):
    times, ex = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        reduce = not strategy.endswith("-unreduced")
        ex = await pg.explore(scenario, services=[logbook, alice], strategy=strategy.removesuffix("-unreduced"),
                              runs=runs, observe=lines, reduce=reduce)
        times.append(time.perf_counter() - t)
    return statistics.median(times), ex


async def main(repeat: int = 3) -> None:
    wall, ex = await timed(example, "exhaustive", 10_000, repeat)
    print(f"exhaustive, the example: {wall * 1000:.0f} ms for {ex.schedules} schedules and {ex.redundant} "
          f"redundant runs (complete={ex.complete}, {len(ex.outcomes)} outcomes)")
    wall, ex = await timed(example, "exhaustive-unreduced", 10_000, repeat)
    print(f"exhaustive without partial-order reduction: {wall * 1000:.0f} ms for {ex.schedules} schedules")
    for n in (1, 2, 4, 8):
        wall, ex = await timed(senders(n), "random", 200, repeat)
        print(f"random, {n} sender(s) of two + one: {ex.schedules / wall:.0f} schedules/s, "
              f"{wall / ex.schedules * 1000:.2f} ms per schedule, {len(ex.outcomes)} outcomes")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3))
