"""What the scheduler costs: the trivial call with its events run as posted (the default) against the same
call with its events held in the scheduler's queue, and the queue's own rate without the SDK.

Run by hand from the repository root:

    python benchmarks/bench_scheduler.py                # 20 paired rounds x 300 calls per strategy
    python benchmarks/bench_scheduler.py --rounds 10 --n 200

Rows:
- `default (AsPosted)`: the trivial ingress call `service_call(greet)`; every event runs as it is posted.
- `OldestFirst`: enqueues, starts and timers held in the queue and drained oldest first (the kinds the
  schedule explorer decides).
- `Stepwise`: every kind held (messages from the attempt and notifications too) and one attempt at a time:
  the deterministic-simulation loop.
- `queue alone`: `Scheduler.post` + `run_pending` of no-op events from 8 sources, per event; and `post`
  under the default strategy (the call it makes at once).

Each strategy row is measured in paired CPU-time rounds against the default (default, then the strategy,
alternating, each on a runtime of its own), so drift on a shared machine hits both alike; the ratio is the
median of the rounds. Events per call: `Scheduler.ran` after the timed calls, over their number.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402
from restate import Context  # noqa: E402

import playground as pg  # noqa: E402
from playground.runtime.scheduler import AsPosted, OldestFirst, Scheduler, Stepwise, Strategy  # noqa: E402

greeter = restate.Service("SchedBenchGreeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return "Hello " + name


STRATEGIES: dict[str, Callable[[], Strategy]] = {"OldestFirst": OldestFirst, "Stepwise": Stepwise}


async def _cpu(call: Callable[[], Awaitable[object]], count: int) -> float:
    t0 = time.process_time()
    for _ in range(count):
        await call()
    return time.process_time() - t0


async def paired(make: Callable[[], Strategy], n: int, rounds: int, warmup: int = 100) -> dict[str, float]:
    """µs per call of the default and of `make()`'s strategy, their median ratio, and events per call."""
    base, held = pg.Runtime(greeter), pg.Runtime(greeter)
    held.scheduler.strategy = make()

    def call_base() -> Awaitable[object]:
        return base.service_call(greet, arg="x")

    def call_held() -> Awaitable[object]:
        return held.service_call(greet, arg="x")

    if await call_held() != "Hello x":
        raise AssertionError("the held strategy's call returned something else")
    await _cpu(call_base, warmup)
    await _cpu(call_held, warmup)
    ran0 = held.scheduler.ran
    b_us, h_us, ratios = [], [], []
    for _ in range(rounds):
        b = await _cpu(call_base, n)
        h = await _cpu(call_held, n)
        b_us.append(b / n * 1e6)
        h_us.append(h / n * 1e6)
        ratios.append(h / b)
    events = (held.scheduler.ran - ran0) / (n * rounds)
    base.close()
    held.close()
    return {"base_us": statistics.median(b_us), "held_us": statistics.median(h_us),
            "ratio": statistics.median(ratios), "events_per_call": events}


def queue_alone(events: int = 200_000, sources: int = 8) -> dict[str, float]:
    """µs per event through the queue (post, then drained oldest first), and per post run at once."""
    def noop() -> None:
        return None

    held = Scheduler(OldestFirst())
    t0 = time.process_time()
    for i in range(events):
        held.post(i % sources, "enqueue x", noop)
    held.run_pending()
    queued = (time.process_time() - t0) / events * 1e6
    eager = Scheduler(AsPosted())
    t0 = time.process_time()
    for i in range(events):
        eager.post(i % sources, "enqueue x", noop)
    at_once = (time.process_time() - t0) / events * 1e6
    return {"queued_us": queued, "at_once_us": at_once}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="calls per round and side (default 300)")
    p.add_argument("--rounds", type=int, default=20, help="paired rounds per strategy (default 20)")
    args = p.parse_args(argv)
    print(f"scheduler cost: {args.rounds} paired CPU-time rounds x {args.n} trivial calls per strategy")
    print("| row | µs/call | vs default | events/call |")
    print("|---|---:|---:|---:|")
    for name, make in STRATEGIES.items():
        r = asyncio.run(paired(make, args.n, args.rounds))
        print(f"| default (AsPosted), paired with {name} | {r['base_us']:.1f} | 1.00x | - |")
        print(f"| {name} | {r['held_us']:.1f} | {r['ratio']:.2f}x | {r['events_per_call']:.1f} |")
    q = queue_alone()
    print(f"| queue alone: post + drain, per event | {q['queued_us']:.2f} | | |")
    print(f"| queue alone: post run at once (default), per event | {q['at_once_us']:.2f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
