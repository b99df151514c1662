"""The scheduler as the engine's one loop: every kind of state change is an event a strategy can hold
(messages from attempts and notifications to them too), attempts can run one at a time, and idleness is
known from events, not found by polling (the one wall-clock timer is the inactivity watchdog)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import restate

import playground as pg
from playground.runtime import waiting
from playground.runtime.scheduler import (
    KINDS,
    AsPosted,
    Event,
    OldestFirst,
    Scheduler,
    Scripted,
    Stepwise,
    Strategy,
)
from playground.runtime.waiting import Waiter

trace: list[str] = []

loop_svc = restate.Service("LoopSvc")


@loop_svc.handler()
async def two_steps(ctx: restate.Context, name: str) -> str:
    """Writes two lines with a plain asyncio yield (not a Restate await) between them."""
    trace.append(f"{name}1")
    await asyncio.sleep(0)
    trace.append(f"{name}2")
    await ctx.sleep(timedelta(seconds=1))
    trace.append(f"{name}3")
    return name


@loop_svc.handler()
async def nap(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(seconds=1))
    return "rested"


@loop_svc.handler()
async def note(ctx: restate.Context, line: str) -> str:
    trace.append(line)
    return line


@loop_svc.handler()
async def fan_out(ctx: restate.Context) -> list[str]:
    return [await ctx.service_call(note, arg="x"), await ctx.service_call(note, arg="y")]


@loop_svc.handler()
async def slow_then_awakeable(ctx: restate.Context) -> str:
    await asyncio.sleep(0.02)  # handler code busy outside Restate for a moment: the await must sleep
    _id, fut = ctx.awakeable()
    return await fut


def _step() -> str:
    return "ran"


@loop_svc.handler()
async def with_a_run(ctx: restate.Context) -> str:
    return await ctx.run_typed("step", _step) + " " + await ctx.run_typed("again", _step)


blob = restate.VirtualObject("LoopBlob")


@blob.handler()
async def fill(ctx: restate.ObjectContext, size: int) -> int:
    ctx.set("blob", "x" * size)
    return size


@loop_svc.handler()
async def never_reaches_restate(ctx: restate.Context) -> str:
    await asyncio.Event().wait()  # a plain asyncio future nothing sets
    return "unreachable"


class Chooser(Strategy):
    """Holds every kind, one attempt at a time; at each decision picks the first ready event whose
    description starts with the first matching entry of `prefer` (else the oldest), and records what was
    ready and what ran."""

    holds = KINDS
    one_at_a_time = True

    def __init__(self, prefer: tuple[str, ...] = ()) -> None:
        self.prefer = prefer
        self.ready: list[list[Event]] = []
        self.chosen: list[Event] = []

    def choose(self, ready):
        pick = next((i for p in self.prefer for i, e in enumerate(ready) if e.what.startswith(p)), 0)
        self.ready.append(list(ready))
        self.chosen.append(ready[pick])
        return pick


async def run_nap_and_delayed_note(strategy: Strategy) -> pg.Runtime:
    """`nap` sleeps 1 s while a cell sends `note` delayed by 1 s: at that instant the delayed send's timer
    and nap's messages after it woke can be ready together."""
    trace.clear()
    rt = pg.Runtime(loop_svc)
    rt.scheduler.strategy = strategy
    await rt.service_send(nap)
    await rt.service_send(note, arg="late", send_delay=timedelta(seconds=1))
    await rt.advance(timedelta(seconds=1))
    return rt


def both_ready(strategy: Chooser) -> list[int]:
    """The decisions at which a timer and a message from an attempt were ready, at one instant."""
    return [i for i, ready in enumerate(strategy.ready)
            if {"timer", "message"} <= {e.kind for e in ready} and len({e.at for e in ready}) == 1]


async def test_a_message_from_an_attempt_and_a_timer_due_at_the_same_instant_are_one_decision() -> None:
    # nap's sleep ends and its notification goes before the delayed send's timer: nap wakes and sends its
    # output while that timer is still ready; then the timer goes first, or the message
    timer_first = Chooser(("notify", "sleep of", "delayed start"))
    message_first = Chooser(("notify", "sleep of", "message"))
    for strategy in (timer_first, message_first):
        rt = await run_nap_and_delayed_note(strategy)
        assert sorted(rt.invocations()["status"]) == ["completed", "completed"] and trace == ["late"]
        rt.close()
    assert both_ready(timer_first) and both_ready(message_first)
    assert timer_first.chosen[both_ready(timer_first)[0]].kind == "timer"
    assert message_first.chosen[both_ready(message_first)[0]].kind == "message"
    # two orders: the delayed send arrived before, or after, nap's End was handled
    def order(s: Chooser) -> list[str]:
        return [e.what for e in s.chosen if e.what.startswith(("delayed start", "message End"))]

    assert order(timer_first)[0].startswith("delayed start")
    assert order(message_first)[0].startswith("message End")


async def test_attempts_run_one_at_a_time_until_the_sdk_is_blocked_on_the_engine() -> None:
    orders = {}
    for strategy in (AsPosted(), Stepwise()):
        trace.clear()
        rt = pg.Runtime(loop_svc)
        rt.scheduler.strategy = strategy
        await rt.service_send(two_steps, arg="a")
        await rt.service_send(two_steps, arg="b")
        await rt.advance(timedelta(seconds=1))
        orders[type(strategy).__name__] = list(trace)
        assert list(rt.invocations()["status"]) == ["completed", "completed"]
        rt.close()
    # the default lets asyncio interleave the two handlers between their Restate awaits ...
    assert orders["AsPosted"][:4] == ["a1", "b1", "a2", "b2"]
    # ... one at a time, each runs until it is blocked on the engine (its ctx.sleep) before the other starts
    assert orders["Stepwise"] == ["a1", "a2", "b1", "b2", "a3", "b3"]


async def test_stepwise_reaches_the_same_results_ids_and_times_as_the_default() -> None:
    results = {}
    for strategy in (AsPosted(), Stepwise()):
        rt = pg.Runtime(loop_svc)
        rt.scheduler.strategy = strategy
        out = await rt.service_call(fan_out)
        table = rt.invocations()
        columns = ["id", "target", "status", "created_at", "completed_at", "journal_size", "completion_result"]
        results[type(strategy).__name__] = (out, table[columns].sort_values("id").to_dict("records"))
        rt.close()
    assert results["AsPosted"] == results["Stepwise"]
    assert results["Stepwise"][0] == ["x", "y"]


async def test_notifications_wait_in_the_queue_until_the_strategy_hands_them_over() -> None:
    strategy = Chooser([])
    rt = pg.Runtime(loop_svc)
    rt.scheduler.strategy = strategy
    assert await rt.service_call(fan_out) == ["x", "y"]
    kinds = {e.kind for e in strategy.chosen}
    assert {"enqueue", "start", "message", "notify"} <= kinds
    # each call's completion reached fan_out as a notify event of fan_out's own FIFO
    notifies = [e for e in strategy.chosen if e.kind == "notify"]
    assert notifies and all(e.source == notifies[0].source for e in notifies)
    rt.close()


async def test_idleness_is_known_from_events_without_a_wall_clock_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    fired: list[str] = []
    monkeypatch.setattr(Waiter, "_watchdog_fired", lambda self: fired.append("watchdog"))
    slept: list[int] = []
    wake = Waiter.wake

    def counting_wake(futures):  # (a staticmethod)
        slept.append(len(futures))
        wake(futures)

    monkeypatch.setattr(Waiter, "wake", staticmethod(counting_wake))
    rt = pg.Runtime(loop_svc)
    await rt.service_send(slow_then_awakeable)
    await rt.settle()  # returns once the handler awaits its awakeable: nothing else can progress
    assert list(rt.invocations()["status"]) == ["running"]
    assert any(slept) and fired == []  # woken by an event (the SDK blocking), never by a timer
    rt.close()


async def test_the_watchdog_raises_stuck_error_for_handler_code_that_never_reaches_a_restate_await(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "INACTIVITY_TIMEOUT_S", 0.2)
    rt = pg.Runtime(loop_svc)
    with pytest.raises(pg.StuckError, match=r"without finishing or reaching a Restate await: inv_\w+ "
                                            r"LoopSvc/never_reaches_restate"):
        await rt.service_call(never_reaches_restate)
    rt.close()


def test_events_are_taken_in_virtual_time_then_sequence_order() -> None:
    now = [5]
    ran: list[str] = []
    scheduler = Scheduler(OldestFirst(), now=lambda: now[0])
    scheduler.post("a", "enqueue X", lambda: ran.append("X"))
    now[0] = 3
    scheduler.post("b", "enqueue Y", lambda: ran.append("Y"))
    scheduler.post("c", "enqueue Z", lambda: ran.append("Z"))
    assert scheduler.run_pending() and ran == ["Y", "Z", "X"] and scheduler.ran == 3


def test_a_kind_the_strategy_does_not_hold_runs_when_posted() -> None:
    ran: list[str] = []
    default_kinds = Scheduler(OldestFirst())
    default_kinds.post(("attempt", "i"), "message End from i", lambda: ran.append("End"), "message")
    assert ran == ["End"] and not default_kinds.pending
    holding = Scheduler(Scripted(holds={"message"}))
    holding.post(("attempt", "i"), "message End from i", lambda: ran.append("End again"), "message")
    holding.post("ingress", "enqueue x", lambda: ran.append("enqueue"))
    assert ran == ["End", "enqueue"] and holding.pending
    assert holding.run_pending() and ran == ["End", "enqueue", "End again"]


def test_holding_a_kind_the_engine_does_not_post_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"holds must be a set of event kinds out of \['enqueue', 'message', "
                                         r"'notify', 'operation', 'start', 'timer'\], not \{'messages'\}"):
        Scripted(holds={"messages"})
    with pytest.raises(ValueError, match="holds must be a set of event kinds"):
        Scripted(holds="message")  # type: ignore[arg-type]


async def test_an_attempt_whose_run_proposal_waits_in_the_queue_is_blocked_not_busy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # were the closure counted as running until its proposal is handled, the call would wait for the
    # watchdog and raise StuckError
    monkeypatch.setattr(waiting, "INACTIVITY_TIMEOUT_S", 2.0)
    for mode in ("normal", "always_suspend"):
        rt = pg.Runtime(loop_svc, mode=mode)
        rt.scheduler.strategy = Stepwise()
        assert await rt.service_call(with_a_run) == "ran ran"
        rt.close()


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_start_held_when_the_runtime_restarts_runs_after_the_restore(store: str, tmp_path) -> None:
    trace.clear()
    rt = pg.Runtime(loop_svc, store=None if store == "memory" else tmp_path / "held.sqlite")
    rt.scheduler.strategy = Stepwise()
    handle = await rt.service_send(note, arg="held")
    assert rt.invocation(handle.invocation_id).status == "pending" and rt.scheduler.pending
    await rt.faults.restart()  # the held start is dropped with the tables it acted on ...
    await rt.settle()  # ... and the restored invocation starts again
    assert rt.invocation(handle.invocation_id).status == "completed" and trace == ["held"]
    rt.close()


async def test_a_held_message_whose_commit_fails_ends_the_await_with_the_store_error(tmp_path) -> None:
    rt = pg.Runtime(blob, store=tmp_path / "full.sqlite")
    rt.scheduler.strategy = Stepwise()
    assert await rt.object_call(fill, key="f", arg=10) == 10
    db = rt._store._db  # a full disk: SQLite refuses to grow the file (as in test_store.py)
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(pg.StoreError, match="could not be written: the disk is full"):
        await rt.object_call(fill, key="f", arg=100_000)  # its SetState, handled from the queue, does not fit
    assert rt.state("LoopBlob", "f") == {"blob": "x" * 10}


def test_one_at_a_time_hands_an_attempt_its_waiting_notifications_together_and_nothing_else() -> None:
    ran: list[str] = []
    woken: set[str] = set()
    scheduler = Scheduler(Stepwise(), busy=lambda: bool(woken))

    def hand(inv: str, what: str) -> None:
        ran.append(what)
        woken.add(inv)  # the attempt wakes up: busy until it is blocked again

    scheduler.post(("notify", "a"), "notify a 1", lambda: hand("a", "a1"), "notify")
    scheduler.post(("start", "b"), "start b", lambda: hand("b", "b"), "start")
    scheduler.post(("notify", "a"), "notify a 2", lambda: hand("a", "a2"), "notify")
    assert scheduler.run_pending() and ran == ["a1", "a2"]  # one chunk for a; b waits while a is busy
    assert not scheduler.run_pending() and ran == ["a1", "a2"]
    woken.clear()  # a is blocked on the engine again
    assert scheduler.run_pending() and ran == ["a1", "a2", "b"] and not scheduler.pending
