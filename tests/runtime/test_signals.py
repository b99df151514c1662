"""Named signals addressed by invocation id (resolve, reject, buffering, duplicates, combinators) and
awakeables completed from a cell."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import restate

import playground as pg

# ------------------------------------------------------------------------------ services

waiters = restate.Service("SigWaiters")


@waiters.handler()
async def waiter(ctx: restate.Context) -> str:
    return await ctx.signal("go")


@waiters.handler()
async def late_waiter(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(minutes=5))
    return await ctx.signal("go")


@waiters.handler()
async def waiter_twice(ctx: restate.Context) -> list:
    """Two futures on one signal name: the SDK hands the single notification to the first only."""
    first, second = ctx.signal("go"), ctx.signal("go")
    return [await first, await second]


@waiters.handler()
async def quick(ctx: restate.Context) -> str:
    return "done"


def _three(ctx: restate.Context) -> list:
    return [ctx.signal(f"sig{i}") for i in range(3)]


@waiters.handler()
async def any_successful(ctx: restate.Context) -> str:
    last: restate.TerminalError | None = None
    async for f in restate.as_completed(*_three(ctx)):
        try:
            return await f
        except restate.TerminalError as e:
            last = e
    assert last is not None
    raise last


@waiters.handler()
async def all_succeeded(ctx: restate.Context) -> str:
    futs = _three(ctx)
    await restate.gather(*futs)
    return "|".join([await f for f in futs])


@waiters.handler()
async def all_completed(ctx: restate.Context) -> str:
    parts = []
    for f in await restate.gather(*_three(ctx)):
        try:
            parts.append(f"ok:{await f}")
        except restate.TerminalError as e:
            parts.append(f"err:{e.message}")
    return "|".join(parts)


@waiters.handler()
async def first_completed(ctx: restate.Context) -> list:
    futs = _three(ctx)
    done, pending = await restate.wait_completed(*futs)
    return [[futs.index(d) for d in done], [futs.index(p) for p in pending], await done[0]]


sender = restate.Service("SigSender")


@sender.handler()
async def send_go(ctx: restate.Context, req: dict) -> None:
    ctx.resolve_signal(req["id"], "go", req["value"])


@sender.handler()
async def reject_go(ctx: restate.Context, req: dict) -> None:
    ctx.reject_signal(req["id"], "go", "boom")


@sender.handler()
async def resolve_named(ctx: restate.Context, req: dict) -> None:
    ctx.resolve_signal(req["id"], req["name"], req["value"])


@sender.handler()
async def reject_named(ctx: restate.Context, req: dict) -> None:
    ctx.reject_signal(req["id"], req["name"], req["reason"])


awk = restate.VirtualObject("SigAwk")


@awk.handler()
async def hold(ctx: restate.ObjectContext) -> str:
    awk_id, fut = ctx.awakeable()
    ctx.set("awk", awk_id)
    return await fut


@awk.handler()
async def hold_and_catch(ctx: restate.ObjectContext) -> dict:
    awk_id, fut = ctx.awakeable()
    ctx.set("awk", awk_id)
    try:
        return {"value": await fut}
    except restate.TerminalError as e:
        return {"code": e.status_code, "message": e.message}


def make(mode: str, seed: int = 0) -> pg.Runtime:
    return pg.Runtime(waiters, sender, awk, mode=mode, seed=seed)


# Every test runs twice: with live attempts, and with mode="always_suspend", where the handler suspends at each
# await on something new and the combinator is rebuilt by replaying the journal.
pytestmark = pytest.mark.parametrize("mode", ["normal", "always_suspend"])


# ------------------------------------------------------------------------------ single signals


async def test_resolved_signal_is_returned_by_the_waiter(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(waiter)
    await rt.settle()
    with pytest.raises(pg.NotReady):
        rt.output(handle.invocation_id)
    await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "hello"})
    assert await rt.attach(handle.invocation_id) == "hello"


async def test_rejected_signal_fails_the_waiter_with_the_reason(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(waiter)
    await rt.service_call(reject_go, arg={"id": handle.invocation_id})
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(handle.invocation_id)
    assert "boom" in ei.value.message


async def test_a_signal_sent_before_the_waiter_asks_for_it_is_kept(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    handle = await rt.service_send(late_waiter)
    await rt.settle()
    await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "early"})
    assert rt.now == t0  # the waiter is still in its 5-minute sleep
    with pytest.raises(pg.NotReady):
        rt.output(handle.invocation_id)
    assert await rt.attach(handle.invocation_id) == "early"
    assert rt.now == t0 + timedelta(minutes=5)


async def test_resolving_the_same_signal_twice_is_accepted_and_the_first_value_wins(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(late_waiter)
    await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "first"})
    await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "second"})
    assert await rt.attach(handle.invocation_id) == "first"


async def test_resolving_a_signal_again_after_the_waiter_got_it_changes_nothing(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(waiter)
    await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "first"})
    assert await rt.attach(handle.invocation_id) == "first"
    await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "second"})
    assert rt.output(handle.invocation_id) == "first"


async def test_a_signal_to_a_completed_invocation_is_ignored_without_error(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(quick)
    assert await rt.attach(handle.invocation_id) == "done"
    journal_before = len(rt.journal(handle.invocation_id))
    assert await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "late"}) is None
    assert await rt.service_call(reject_go, arg={"id": handle.invocation_id}) is None
    assert rt.output(handle.invocation_id) == "done"
    assert len(rt.journal(handle.invocation_id)) == journal_before


async def test_a_second_future_on_an_already_delivered_signal_raises_stuck_instead_of_hanging(
        mode: str, request: pytest.FixtureRequest) -> None:
    rt = make(mode)
    handle = await rt.service_send(waiter_twice)
    await rt.service_call(send_go, arg={"id": handle.invocation_id, "value": "once"})
    attach = asyncio.ensure_future(rt.attach(handle.invocation_id))
    for _ in range(2000):  # loop turns, not time: normal mode raises within a dozen
        if attach.done():
            break
        await asyncio.sleep(0)
    if not attach.done():
        attempts = rt.invocation(handle.invocation_id).attempts
        rt.kill(handle.invocation_id)  # stop the spinning invocation before the loop closes
        with pytest.raises(restate.TerminalError):
            await attach
        pytest.fail(f"attach still waiting after 2000 loop turns; the invocation made {attempts} attempts")
    with pytest.raises(pg.StuckError, match="signal"):
        attach.result()


# ------------------------------------------------------------------------------ combinators over signals


async def test_any_successful_over_signals_skips_the_rejected_ones(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(any_successful)
    inv = handle.invocation_id
    await rt.service_call(reject_named, arg={"id": inv, "name": "sig0", "reason": "fail0"})
    await rt.service_call(reject_named, arg={"id": inv, "name": "sig2", "reason": "fail2"})
    await rt.settle()
    with pytest.raises(pg.NotReady):
        rt.output(inv)
    await rt.service_call(resolve_named, arg={"id": inv, "name": "sig1", "value": "success1"})
    assert await rt.attach(inv) == "success1"


async def test_any_successful_over_signals_fails_with_the_last_error_when_all_fail(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(any_successful)
    inv = handle.invocation_id
    for i in (0, 2, 1):
        await rt.service_call(reject_named, arg={"id": inv, "name": f"sig{i}", "reason": f"fail{i}"})
        await rt.settle()
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(inv)
    assert ei.value.message == "fail1"


async def test_all_succeeded_over_signals_joins_the_values_in_input_order(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(all_succeeded)
    inv = handle.invocation_id
    for i in (2, 0, 1):
        await rt.service_call(resolve_named, arg={"id": inv, "name": f"sig{i}", "value": f"val{i}"})
    assert await rt.attach(inv) == "val0|val1|val2"


async def test_all_completed_over_signals_reports_each_outcome(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(all_completed)
    inv = handle.invocation_id
    await rt.service_call(resolve_named, arg={"id": inv, "name": "sig0", "value": "val0"})
    await rt.service_call(reject_named, arg={"id": inv, "name": "sig1", "reason": "err1"})
    await rt.service_call(resolve_named, arg={"id": inv, "name": "sig2", "value": "val2"})
    assert await rt.attach(inv) == "ok:val0|err:err1|ok:val2"


async def test_first_completed_over_signals_returns_the_one_resolved(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(first_completed)
    inv = handle.invocation_id
    await rt.settle()
    await rt.service_call(resolve_named, arg={"id": inv, "name": "sig1", "value": "first"})
    assert await rt.attach(inv) == [[1], [0, 2], "first"]


# ------------------------------------------------------------------------------ awakeables from a cell


async def test_resolving_an_already_resolved_awakeable_from_a_cell_is_a_harmless_no_op(mode: str) -> None:
    rt = make(mode)
    handle = await rt.object_send(hold, key="k")
    await rt.settle()
    awk_id = rt.state("SigAwk", "k")["awk"]
    rt.resolve_awakeable(awk_id, "first")
    rt.resolve_awakeable(awk_id, "second")
    assert await rt.attach(handle.invocation_id) == "first"
    rt.resolve_awakeable(awk_id, "third")  # after the invocation has completed
    rt.reject_awakeable(awk_id, "too late")
    await rt.settle()
    assert rt.output(handle.invocation_id) == "first"


async def test_resolving_something_that_is_not_an_awakeable_id_raises_value_error(mode: str) -> None:
    rt = make(mode)
    with pytest.raises(ValueError, match="'not-an-id' is not an awakeable id"):
        rt.resolve_awakeable("not-an-id", 1)
    with pytest.raises(ValueError, match="'not-an-id' is not an awakeable id"):
        rt.reject_awakeable("not-an-id", "nope")


async def test_an_awakeable_id_of_another_runtime_raises_key_error(mode: str) -> None:
    rt1, rt2 = make(mode, seed=0), make(mode, seed=1)
    await rt1.object_send(hold, key="k")
    await rt1.settle()
    foreign = rt1.state("SigAwk", "k")["awk"]
    h2 = await rt2.object_send(hold, key="k")
    await rt2.settle()
    assert rt2.state("SigAwk", "k")["awk"] != foreign
    with pytest.raises(KeyError):
        rt2.resolve_awakeable(foreign, 1)
    with pytest.raises(KeyError):
        rt2.reject_awakeable(foreign, "nope")
    await rt2.settle()
    with pytest.raises(pg.NotReady):
        rt2.output(h2.invocation_id)


async def test_rejecting_an_awakeable_with_a_code_reaches_the_handler_as_terminal_error(mode: str) -> None:
    rt = make(mode)
    caught = await rt.object_send(hold_and_catch, key="caught")
    uncaught = await rt.object_send(hold, key="uncaught")
    await rt.settle()
    rt.reject_awakeable(rt.state("SigAwk", "caught")["awk"], "nope", code=418)
    rt.reject_awakeable(rt.state("SigAwk", "uncaught")["awk"], "nope", code=418)
    assert await rt.attach(caught.invocation_id) == {"code": 418, "message": "nope"}
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(uncaught.invocation_id)
    assert ei.value.status_code == 418 and ei.value.message == "nope"
