"""What deadlock detection costs, run by hand: `python benchmarks/bench_deadlock.py`.

1. Overhead on the service-to-service call workload (a caller awaiting a callee: one wait-for edge added
   and removed per call): CPU time with the live wait-for graph against the same runtime with the graph
   replaced by a do-nothing stand-in, in alternating rounds. Target: under 5%.
2. Finding a cycle in a graph of 10,000 waiting invocations: the time to add the edge that closes a
   cycle (which is when detection runs). Target: under 1 ms.
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
from playground.runtime.waitfor import WaitForGraph  # noqa: E402

greeter = restate.Service("DlGreeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


caller = restate.Service("DlCaller")


@caller.handler()
async def call_greet(ctx: restate.Context, name: str) -> str:
    return await ctx.service_call(greet, arg=name)


class NoGraph(WaitForGraph):
    """The wait-for graph switched off: every operation does nothing."""

    def add(self, u, v, kind):  # type: ignore[no-untyped-def]
        return None

    def remove(self, u, v):  # type: ignore[no-untyped-def]
        pass

    def remove_all_from(self, u):  # type: ignore[no-untyped-def]
        pass

    def cycle_reached_from(self, start):  # type: ignore[no-untyped-def]
        return None


async def _cpu(rt: pg.Runtime, n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        await rt.service_call(call_greet, arg="x")
    return time.process_time() - t0


async def overhead(rounds: int = 40, n: int = 300) -> list[float]:
    with_graph = pg.Runtime(greeter, caller)
    without = pg.Runtime(greeter, caller)
    without._wait = NoGraph()
    await _cpu(with_graph, 100)
    await _cpu(without, 100)
    ratios = []
    for _ in range(rounds):
        a = await _cpu(without, n)
        b = await _cpu(with_graph, n)
        ratios.append(b / a)
    return ratios


def cycle_in_big_graph(waiting: int = 10_000, trials: int = 50) -> list[float]:
    """Seconds to add a cycle-closing edge into a graph that already holds `waiting` waiting invocations
    (chains of calls and lock queues, as many independent requests would leave behind)."""
    times = []
    for t in range(trials):
        g = WaitForGraph()
        for i in range(0, waiting, 4):  # groups of four: a call chain, and one more queued behind its end
            g.add(f"inv{i}", f"inv{i + 1}", "call")
            g.add(f"inv{i + 1}", f"inv{i + 2}", "call")
            g.add(("Obj", f"k{i}"), f"inv{i + 2}", "holds")
            g.add(f"inv{i + 3}", ("Obj", f"k{i}"), "queued")
        assert not g.cycles()
        # a three-invocation cycle across independent requests, closed by its last edge
        g.add(f"a{t}", f"b{t}", "call")
        g.add(f"b{t}", ("Obj", f"c{t}"), "queued")
        t0 = time.perf_counter()
        cycle = g.add(("Obj", f"c{t}"), f"a{t}", "holds")
        times.append(time.perf_counter() - t0)
        assert cycle is not None
    return times


def main() -> int:
    ratios = asyncio.run(overhead())
    med = statistics.median(ratios)
    q = statistics.quantiles(ratios, n=4)
    print(f"service-to-service call, wait-for graph on / off (CPU time, 40 alternating rounds of 300 calls): "
          f"median {med:.3f}x (quartiles {q[0]:.3f}-{q[2]:.3f}); overhead {100 * (med - 1):+.1f}% "
          f"-> {'OK' if med < 1.05 else 'ABOVE'} (target under 5%)")
    times = cycle_in_big_graph()
    print(f"closing a cycle in a graph of 10,000 waiting invocations: median {statistics.median(times) * 1e6:.1f} µs, "
          f"max {max(times) * 1e6:.1f} µs over {len(times)} trials -> "
          f"{'OK' if max(times) < 1e-3 else 'ABOVE'} (target under 1 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
