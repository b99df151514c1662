"""The SDK's combinators (gather, select, as_completed, wait_completed) inside handlers, over calls, sleeps,
runs, awakeables and named signals, driven by the virtual clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import restate

import playground as pg

# ------------------------------------------------------------------------------ services

slow = restate.Service("CombSlow")


@slow.handler()
async def take(ctx: restate.Context, req: dict) -> str:
    """Sleeps `minutes` virtual minutes, then returns `value`."""
    await ctx.sleep(timedelta(minutes=req["minutes"]))
    return req["value"]


@slow.handler()
async def refuse(ctx: restate.Context, why: str) -> str:
    raise restate.TerminalError(why, 422)


def _call(ctx: restate.Context, minutes: float, value: str) -> restate.RestateDurableFuture[str]:
    return ctx.service_call(take, arg={"minutes": minutes, "value": value})


slow_obj = restate.VirtualObject("CombSlowObj")


@slow_obj.handler()
async def take_locked(ctx: restate.ObjectContext, req: dict) -> str:
    """Like CombSlow/take, but holds the key's lock while it sleeps."""
    await ctx.sleep(timedelta(minutes=req["minutes"]))
    return f"{ctx.key()}:{req['value']}"


flows = restate.Service("CombFlows")


@flows.handler()
async def gather_three_calls(ctx: restate.Context) -> list:
    futs = [_call(ctx, 3, "three"), _call(ctx, 7, "seven"), _call(ctx, 5, "five")]
    done = await restate.gather(*futs)
    return [await f for f in done] + [all(d is f for d, f in zip(done, futs, strict=False))]


@flows.handler()
async def gather_ok_and_failing_call(ctx: restate.Context) -> list:
    ok = _call(ctx, 2, "fine")
    bad = ctx.service_call(refuse, arg="nope")
    out = []
    for f in await restate.gather(ok, bad):
        try:
            out.append(f"ok:{await f}")
        except restate.TerminalError as e:
            out.append(f"err:{e.status_code}:{e.message}")
    return out


@flows.handler()
async def call_or_timeout(ctx: restate.Context, call_minutes: float) -> list:
    """select between a call of `call_minutes` minutes and a one-minute timeout; returns the branch, its value
    and the callee's invocation id."""
    call = _call(ctx, call_minutes, "called")
    winner, value = await restate.select(result=call, timeout=ctx.sleep(timedelta(minutes=1)))
    return [winner, value, await call.invocation_id()]


@flows.handler()
async def failing_call_or_timeout(ctx: restate.Context) -> list:
    try:
        return await restate.select(result=ctx.service_call(refuse, arg="no way"),
                                    timeout=ctx.sleep(timedelta(minutes=1)))
    except restate.TerminalError as e:
        return ["raised", e.status_code, e.message]


@flows.handler()
async def object_calls_as_completed(ctx: restate.Context) -> list:
    """Two calls to one key queue behind its lock; a call to another key runs beside them."""
    futs = [ctx.object_call(take_locked, key="a", arg={"minutes": 3, "value": "first"}),
            ctx.object_call(take_locked, key="a", arg={"minutes": 4, "value": "second"}),
            ctx.object_call(take_locked, key="b", arg={"minutes": 5, "value": "other"})]
    return [await f async for f in restate.as_completed(*futs)]


@flows.handler()
async def calls_as_completed(ctx: restate.Context) -> list:
    futs = [_call(ctx, 5, "five"), _call(ctx, 1, "one"), _call(ctx, 3, "three")]
    return [await f async for f in restate.as_completed(*futs)]


@flows.handler()
async def sleeps_as_completed(ctx: restate.Context) -> list:
    labelled = {"long": ctx.sleep(timedelta(minutes=9)), "short": ctx.sleep(timedelta(minutes=2)),
                "middle": ctx.sleep(timedelta(minutes=4))}
    names = {f: name for name, f in labelled.items()}
    return [names[f] async for f in restate.as_completed(*labelled.values())]


@flows.handler()
async def wait_some(ctx: restate.Context) -> dict:
    call = _call(ctx, 1, "quick")
    nap = ctx.sleep(timedelta(minutes=10))
    _id, never = ctx.awakeable()
    done, pending = await restate.wait_completed(nap, call, never)
    return {
        "done_is_call": len(done) == 1 and done[0] is call,
        "pending_is_nap_and_never": len(pending) == 2 and pending[0] is nap and pending[1] is never,
        "value": await done[0],
    }


@flows.handler()
async def wait_with_one_already_done(ctx: restate.Context) -> dict:
    async def produce() -> str:
        return "made"

    made = ctx.run_typed("produce", produce)
    value = await made  # completed before the combinator sees it
    nap = ctx.sleep(timedelta(hours=1))
    done, pending = await restate.wait_completed(nap, made)
    return {"value": value, "done": [d is made for d in done], "pending": [p is nap for p in pending]}


@flows.handler()
async def gather_sleep_run_and_call(ctx: restate.Context) -> list:
    async def compute() -> int:
        await asyncio.sleep(0)
        return 42

    nap = ctx.sleep(timedelta(minutes=6))
    run = ctx.run_typed("compute", compute)
    call = _call(ctx, 4, "four")
    await restate.gather(nap, run, call)
    return [await nap, await run, await call]


@flows.handler()
async def mixed_all_completed(ctx: restate.Context) -> str:
    """S50: a run that returns, a named signal and a run that fails terminally, all completed."""

    async def returns() -> str:
        await asyncio.sleep(0)
        return "runval"

    async def fails() -> str:
        raise restate.TerminalError("fail")

    futs = [ctx.run_typed("returns", returns), ctx.signal("sig"), ctx.run_typed("fails", fails)]
    parts = []
    for f in await restate.gather(*futs):
        try:
            parts.append(f"ok:{await f}")
        except restate.TerminalError as e:
            parts.append(f"err:{e.message}")
    return "|".join(parts)


@flows.handler()
async def mixed_run_wins_first_completed(ctx: restate.Context) -> str:
    """S47: a run that returns races a signal nothing sends; the run wins."""

    async def returns() -> str:
        await asyncio.sleep(0)
        return "runval"

    done, _pending = await restate.wait_completed(ctx.signal("sig"), ctx.run_typed("returns", returns))
    return await done[0]


signaller = restate.Service("CombSignaller")


@signaller.handler()
async def resolve(ctx: restate.Context, req: dict) -> None:
    ctx.resolve_signal(req["id"], req["name"], req["value"])


@signaller.handler()
async def unlock(ctx: restate.Context, req: dict) -> None:
    ctx.resolve_awakeable(req["id"], req["value"])


holder = restate.VirtualObject("CombHolder")


@holder.handler()
async def awakeable_or_timeout(ctx: restate.ObjectContext, minutes: int) -> list:
    awk_id, awk = ctx.awakeable()
    ctx.set("awk", awk_id)
    return await restate.select(awk=awk, timeout=ctx.sleep(timedelta(minutes=minutes)))


@holder.handler()
async def first_successful(ctx: restate.ObjectContext) -> dict:
    """S37: three awakeables and three runs that fail terminally; the first success wins."""

    def failing(reason: str):
        async def fail() -> str:
            raise restate.TerminalError(reason)

        return fail

    futs = []
    for i in range(3):
        awk_id, awk = ctx.awakeable()
        ctx.set(f"awk{i}", awk_id)
        futs.append(awk)
        futs.append(ctx.run_typed(f"run{i}", failing(f"run{i}")))
    failures = []
    async for f in restate.as_completed(*futs):
        try:
            return {"value": await f, "failures": sorted(failures)}
        except restate.TerminalError as e:
            failures.append(e.message)
    raise restate.TerminalError("all failed")


@holder.handler()
async def gather_awakeables(ctx: restate.ObjectContext) -> list:
    ids_futs = [ctx.awakeable() for _ in range(2)]
    ctx.set("awks", [i for i, _f in ids_futs])
    futs = [f for _i, f in ids_futs]
    await restate.gather(*futs)
    return [await f for f in futs]


@holder.handler(kind="shared")
async def awakeable_ids(ctx: restate.ObjectSharedContext) -> list:
    return await ctx.get("awks") or []


def make(mode: str) -> pg.Runtime:
    return pg.Runtime(slow, slow_obj, flows, signaller, holder, mode=mode)


# Every test runs twice: with live attempts, and with mode="always_suspend", where the handler suspends at each
# await on something new and the combinator is rebuilt by replaying the journal.
pytestmark = pytest.mark.parametrize("mode", ["normal", "always_suspend"])


# ------------------------------------------------------------------------------ gather


async def test_gather_of_three_calls_returns_values_in_order_and_ends_at_the_slowest(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    # the values in input order, and gather hands back the very futures it was given
    assert await rt.service_call(gather_three_calls) == ["three", "seven", "five", True]
    assert rt.now == t0 + timedelta(minutes=7)


async def test_gather_does_not_raise_for_a_failed_call_awaiting_it_does(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    assert await rt.service_call(gather_ok_and_failing_call) == ["ok:fine", "err:422:nope"]
    assert rt.now == t0 + timedelta(minutes=2)


async def test_gather_over_a_sleep_a_run_and_a_call(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    assert await rt.service_call(gather_sleep_run_and_call) == [None, 42, "four"]
    assert rt.now == t0 + timedelta(minutes=6)


# ------------------------------------------------------------------------------ select


async def test_select_returns_the_timeout_after_one_minute_and_the_losing_call_still_completes(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    winner, value, callee = await rt.service_call(call_or_timeout, arg=10)
    assert [winner, value] == ["timeout", None]
    assert rt.now == t0 + timedelta(minutes=1)
    with pytest.raises(pg.NotReady):
        rt.output(callee)
    assert await rt.attach(callee) == "called"
    assert rt.now == t0 + timedelta(minutes=10)


async def test_select_returns_the_call_when_it_finishes_before_the_timeout(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    winner, value, callee = await rt.service_call(call_or_timeout, arg=0.5)  # 30 s beats the 1 min timeout
    assert [winner, value] == ["result", "called"]
    assert rt.now == t0 + timedelta(seconds=30)
    assert rt.output(callee) == "called"


async def test_select_raises_when_the_call_fails_before_the_timeout(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    assert await rt.service_call(failing_call_or_timeout) == ["raised", 422, "no way"]
    assert rt.now == t0


# ------------------------------------------------------------------------------ as_completed / wait_completed


async def test_as_completed_yields_calls_in_completion_order(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    assert await rt.service_call(calls_as_completed) == ["one", "three", "five"]
    assert rt.now == t0 + timedelta(minutes=5)


async def test_as_completed_over_object_calls_follows_the_per_key_lock(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    # key a: 3 min, then the queued 4 min (done at 7); key b: 5 min beside them
    assert await rt.service_call(object_calls_as_completed) == ["a:first", "b:other", "a:second"]
    assert rt.now == t0 + timedelta(minutes=7)


async def test_as_completed_yields_the_shorter_sleep_first(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    assert await rt.service_call(sleeps_as_completed) == ["short", "middle", "long"]
    assert rt.now == t0 + timedelta(minutes=9)


async def test_wait_completed_splits_done_and_pending(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    out = await rt.service_call(wait_some)
    assert out == {"done_is_call": True, "pending_is_nap_and_never": True, "value": "quick"}
    assert rt.now == t0 + timedelta(minutes=1)


async def test_wait_completed_returns_at_once_when_a_future_is_already_done(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    assert await rt.service_call(wait_with_one_already_done) == {"value": "made", "done": [True], "pending": [True]}
    assert rt.now == t0


# ------------------------------------------------------------------------------ awakeables


async def test_awakeable_raced_against_a_timeout_loses_when_nothing_resolves_it(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    assert await rt.object_call(awakeable_or_timeout, key="a", arg=3) == ["timeout", None]
    assert rt.now == t0 + timedelta(minutes=3)


async def test_awakeable_resolved_from_a_cell_beats_the_timeout(mode: str) -> None:
    rt = make(mode)
    t0 = rt.now
    task = asyncio.ensure_future(rt.object_call(awakeable_or_timeout, key="b", arg=30))
    await rt.settle()
    assert not task.done()
    rt.resolve_awakeable(rt.state("CombHolder", "b")["awk"], "v")
    assert await task == ["awk", "v"]
    assert rt.now == t0  # no virtual time had to pass


async def test_awakeable_rejected_from_a_cell_fails_the_select(mode: str) -> None:
    rt = make(mode)
    task = asyncio.ensure_future(rt.object_call(awakeable_or_timeout, key="c", arg=30))
    await rt.settle()
    rt.reject_awakeable(rt.state("CombHolder", "c")["awk"], "rejected here", code=409)
    with pytest.raises(restate.TerminalError) as ei:
        await task
    assert ei.value.status_code == 409 and "rejected here" in ei.value.message


async def test_gather_of_awakeables_resolved_by_another_handler(mode: str) -> None:
    rt = make(mode)
    handle = await rt.object_send(gather_awakeables, key="g")
    await rt.settle()
    ids = await rt.object_call(awakeable_ids, key="g")  # a shared handler, beside the lock holder
    assert len(ids) == 2 and ids[0] != ids[1]
    await rt.service_call(unlock, arg={"id": ids[1], "value": "second"})
    with pytest.raises(pg.NotReady):
        rt.output(handle.invocation_id)
    await rt.service_call(unlock, arg={"id": ids[0], "value": "first"})
    assert await rt.attach(handle.invocation_id) == ["first", "second"]


async def test_first_successful_among_awakeables_and_failing_runs(mode: str) -> None:
    rt = make(mode)
    task = asyncio.ensure_future(rt.object_call(first_successful, key="s37"))
    await rt.settle()
    state = rt.state("CombHolder", "s37")
    assert {"awk0", "awk1", "awk2"} <= set(state)
    rt.reject_awakeable(state["awk2"], "fail")
    await rt.settle()
    assert not task.done()  # three failed runs and a rejected awakeable do not end it
    rt.resolve_awakeable(state["awk1"], "awk1-result")
    assert await task == {"value": "awk1-result", "failures": ["fail", "run0", "run1", "run2"]}


# ------------------------------------------------------------------------------ runs and signals


async def test_mixed_all_completed_of_run_signal_and_failing_run(mode: str) -> None:
    rt = make(mode)
    handle = await rt.service_send(mixed_all_completed)
    await rt.settle()
    with pytest.raises(pg.NotReady):
        rt.output(handle.invocation_id)
    await rt.service_call(resolve, arg={"id": handle.invocation_id, "name": "sig", "value": "sigval"})
    assert await rt.attach(handle.invocation_id) == "ok:runval|ok:sigval|err:fail"


async def test_a_run_wins_first_completed_against_a_signal_never_sent(mode: str) -> None:
    rt = make(mode)
    assert await rt.service_call(mixed_run_wins_first_completed) == "runval"
