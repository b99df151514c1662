"""Fan-out from one handler: `restate.gather` over N `ctx.service_call`s, and where the time goes.

Run by hand from the repository root:

    python benchmarks/bench_fanout.py                  # N = 1,000 and 10,000
    python benchmarks/bench_fanout.py --n 500 2000 5000

Each row builds its own `pg.Runtime` inside the running loop, warms up with one small fan-out, then times
one ingress call of a handler that issues N calls to a trivial service and awaits them all with
`restate.gather`. Besides the wall time it reports how often the SDK ran its progress loop
(`VMWrapper.do_progress`, which walks every future the handler awaits) and how long those calls took:
that is the SDK's share, the rest is the runtime, the N callee invocations and the event loop.

The runtime hands the SDK every message written before it reads again as one chunk (see
`Attempt.notify`), so a fan-out costs it a handful of progress rounds, not two per call. What stays
superlinear is inside the SDK's core: one `do_progress` over an all-of combinator of N futures.

This file is imported by tests/test_benchmarks_smoke.py (with a tiny N): keep `measure()`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402
from restate import Context  # noqa: E402
from restate.vm import VMWrapper  # noqa: E402

import playground as pg  # noqa: E402

DEFAULT_NS = (1_000, 10_000)

leaf = restate.Service("FanLeaf")


@leaf.handler()
async def echo(ctx: Context, i: int) -> int:
    return i


fan = restate.Service("FanOut")


@fan.handler()
async def fan_out(ctx: Context, n: int) -> int:
    futures = [ctx.service_call(echo, arg=i) for i in range(n)]
    await restate.gather(*futures)
    return sum([await f for f in futures])


@dataclass
class Result:
    n: int
    seconds: float
    progress_calls: int  # VMWrapper.do_progress calls (all of them the fanning-out handler's)
    progress_seconds: float  # time inside those calls (the SDK's core and its Python conversion)

    @property
    def us_per_call(self) -> float:
        return self.seconds / self.n * 1e6


class _ProgressMeter:
    """Count and time VMWrapper.do_progress (whichever wrapper is installed: the playground's observes it)."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self._orig = VMWrapper.do_progress

    def __enter__(self) -> _ProgressMeter:
        orig, meter = self._orig, self

        def timed(vm: VMWrapper, *args: object, **kwargs: object) -> object:
            t0 = time.perf_counter()
            try:
                return orig(vm, *args, **kwargs)
            finally:
                meter.calls += 1
                meter.seconds += time.perf_counter() - t0

        VMWrapper.do_progress = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        VMWrapper.do_progress = self._orig  # type: ignore[method-assign]


async def measure(n: int, warmup: int = 50) -> Result:
    """One fan-out of n calls on a fresh runtime (after one of `warmup` calls), timed."""
    rt = pg.Runtime(leaf, fan)  # installs the playground's SDK hooks before the meter wraps them
    if warmup:
        await rt.service_call(fan_out, arg=warmup)
    gc.collect()
    with _ProgressMeter() as meter:
        t0 = time.perf_counter()
        total = await rt.service_call(fan_out, arg=n)
        seconds = time.perf_counter() - t0
    if total != n * (n - 1) // 2:
        raise AssertionError(f"fan-out of {n} returned {total}")
    # the leaves never wait, so every do_progress call counted is the fanning-out handler's
    return Result(n, seconds, meter.calls, meter.seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=list(DEFAULT_NS), help="fan-out widths (default 1000 10000)")
    args = p.parse_args(argv)
    print(f"{'N':>7} {'seconds':>8} {'µs/call':>8} {'do_progress calls':>18} {'s in do_progress':>17}")
    for n in args.n:
        r = asyncio.run(measure(n))
        print(f"{r.n:>7,} {r.seconds:>8.2f} {r.us_per_call:>8.0f} {r.progress_calls:>18,} {r.progress_seconds:>17.2f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
