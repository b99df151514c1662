"""The scheduler's strategy seam, on the ordering page's example: a handler sends A and then B to a key
while another sender sends C to it at the same instant. Restate allows C anywhere around A and B, never B
before A; each strategy picks one allowed order, and no strategy can pick a forbidden one."""

from __future__ import annotations

import random

import pytest
import restate

import playground as pg
from playground.runtime.scheduler import (
    KINDS,
    AsPosted,
    NewestSourceFirst,
    OldestFirst,
    Scheduler,
    Scripted,
    Stepwise,
    Strategy,
)

logbook = restate.VirtualObject("SchedLogbook")


@logbook.handler()
async def write(ctx: restate.ObjectContext, line: str) -> None:
    lines = await ctx.get("lines") or []
    ctx.set("lines", [*lines, line])


alice = restate.Service("SchedAlice")


@alice.handler()
async def send_two(ctx: restate.Context, key: str) -> None:
    ctx.object_send(write, key=key, arg="A")
    ctx.object_send(write, key=key, arg="B")


bob = restate.Service("SchedBob")


@bob.handler()
async def send_one(ctx: restate.Context, key: str) -> None:
    ctx.object_send(write, key=key, arg="C")


async def lines_written(strategy: Strategy) -> list[str]:
    """The order in which the three writes ran on key Ann under `strategy`."""
    rt = pg.Runtime(logbook, alice, bob)
    rt.scheduler.strategy = strategy
    await rt.service_send(send_two, arg="Ann")
    await rt.service_send(send_one, arg="Ann")
    await rt.settle()
    return rt.state("SchedLogbook", "Ann")["lines"]


async def every_order() -> set[tuple[str, ...]]:
    """Every order some strategy produces: each decision's alternatives explored, one run per order."""
    seen: set[tuple[str, ...]] = set()
    scripts: list[list[int]] = [[]]
    while scripts:
        script = scripts.pop()
        strategy = Scripted(script)
        seen.add(tuple(await lines_written(strategy)))
        for step in range(len(script), len(strategy.options)):
            prefix = script + [0] * (step - len(script))
            scripts.extend(prefix + [other] for other in range(1, strategy.options[step]))
    return seen


async def test_the_default_strategy_keeps_the_order_the_engine_always_used() -> None:
    assert await lines_written(AsPosted()) == ["A", "B", "C"]


async def test_two_strategies_produce_two_different_allowed_orders() -> None:
    assert await lines_written(OldestFirst()) == ["A", "B", "C"]
    assert await lines_written(NewestSourceFirst()) == ["C", "A", "B"]


async def test_every_strategy_keeps_a_before_b_and_together_they_reach_every_allowed_order() -> None:
    orders = await every_order()
    assert orders == {("A", "B", "C"), ("A", "C", "B"), ("C", "A", "B")}
    assert all(order.index("A") < order.index("B") for order in orders)


class RandomEverything(Strategy):
    """Holds every kind of event (messages from attempts and notifications too), picks at random and
    yields at random; `one_at_a_time` as given."""

    holds = KINDS

    def __init__(self, seed: int, one_at_a_time: bool) -> None:
        self.random = random.Random(seed)
        self.one_at_a_time = one_at_a_time

    def choose(self, ready) -> int:
        return self.random.randrange(len(ready))

    def yields(self, ready, ran) -> bool:
        return self.random.random() < 0.3


@pytest.mark.parametrize("one_at_a_time", [False, True])
async def test_holding_every_kind_of_event_still_never_puts_b_before_a(one_at_a_time: bool) -> None:
    orders = {tuple(await lines_written(RandomEverything(seed, one_at_a_time))) for seed in range(40)}
    assert orders == {("A", "B", "C"), ("A", "C", "B"), ("C", "A", "B")}


async def test_stepwise_runs_the_example_in_the_order_the_events_were_posted() -> None:
    assert await lines_written(Stepwise()) == ["A", "B", "C"]


def test_a_scheduler_keeps_one_senders_events_in_order_whatever_the_strategy_chooses() -> None:
    ran: list[str] = []
    scheduler = Scheduler(NewestSourceFirst())
    for source, name in [("h", "A"), ("h", "B"), ("cell", "C")]:
        scheduler.post(source, name, lambda name=name: ran.append(name))
    assert ran == [] and scheduler.pending
    assert scheduler.run_pending() and ran == ["C", "A", "B"] and not scheduler.pending


def test_a_strategy_that_is_not_a_strategy_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"strategy must be a playground\.runtime\.scheduler\.Strategy, not str"):
        Scheduler().strategy = "random"  # type: ignore[assignment]


class YieldAfterFirst(Strategy):
    """Stops each drain after its first event."""

    def yields(self, ready, ran) -> bool:
        return True


def test_a_strategy_that_yields_stops_the_drain_and_the_rest_runs_at_the_next_one() -> None:
    ran: list[str] = []
    scheduler = Scheduler(YieldAfterFirst())
    for source, name in [("h", "A"), ("cell", "C")]:
        scheduler.post(source, name, lambda name=name: ran.append(name))
    assert scheduler.run_pending() and ran == ["A"] and scheduler.pending
    assert scheduler.run_pending() and ran == ["A", "C"] and not scheduler.pending
    assert not scheduler.run_pending()
