"""Replay: always-suspend mode, side effects that never run twice, and journal mismatches (570)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import restate

import playground as pg

effects: list[str] = []
code_runs: list[str] = []

svc = restate.Service("Replay")


@svc.handler()
async def echo(ctx: restate.Context, x: str) -> str:
    return x


@svc.handler()
async def three_effects(ctx: restate.Context) -> int:
    code_runs.append("start")
    count = 0
    for i in range(3):
        async def effect(i: int = i) -> int:
            effects.append(f"effect {i}")
            return i

        await ctx.run_typed(f"effect {i}", effect)
        count += 1
    return count


@svc.handler()
async def journey(ctx: restate.Context, name: str) -> list:
    code_runs.append("start")
    a = await ctx.service_call(echo, arg=name)
    await ctx.sleep(timedelta(hours=1))

    async def effect() -> str:
        effects.append(name)
        return "side"

    b = await ctx.run_typed("effect", effect)
    return [a, b]


@svc.handler()
async def waits_for_awakeable(ctx: restate.Context) -> str:
    code_runs.append("start")
    _awk_id, fut = ctx.awakeable()
    ctx.object_send(remember, key="awk", arg=_awk_id)
    return await fut


store = restate.VirtualObject("Store")


@store.handler()
async def remember(ctx: restate.ObjectContext, value: str) -> None:
    ctx.set("value", value)


counts = {"n": 0}
nd = restate.VirtualObject("NonDet", invocation_retry_policy=restate.InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=1), max_attempts=2, on_max_attempts="kill"))


@nd.handler()
async def set_different_key(ctx: restate.ObjectContext) -> None:
    counts["n"] += 1
    ctx.set("a" if counts["n"] % 2 else "b", counts["n"])
    await ctx.sleep(timedelta(milliseconds=100))
    ctx.object_send(remember, key="after", arg="sent")


def make(mode: str = "normal") -> pg.Runtime:
    effects.clear()
    code_runs.clear()
    counts["n"] = 0
    return pg.Runtime(svc, store, nd, mode=mode)


async def test_always_suspend_replays_but_never_reruns_completed_side_effects() -> None:
    rt = make("always_suspend")
    assert await rt.service_call(three_effects) == 3
    assert effects == ["effect 0", "effect 1", "effect 2"]  # each closure ran once
    assert len(code_runs) == 4  # the handler itself re-ran from the top after each of the 3 suspensions
    inv = rt.invocation(rt.invocations().id.iloc[0])
    assert inv.attempts == 4 and inv.errors == []


async def test_normal_mode_runs_the_same_handler_in_one_attempt() -> None:
    rt = make()
    assert await rt.service_call(three_effects) == 3
    assert len(code_runs) == 1 and rt.invocation(rt.invocations().id.iloc[0]).attempts == 1


async def test_always_suspend_handles_calls_sleeps_and_awakeables_by_suspending_and_resuming() -> None:
    rt = make("always_suspend")
    assert await rt.service_call(journey, arg="ann") == ["ann", "side"]
    assert effects == ["ann"] and rt.now == make().now + timedelta(hours=1)
    root = rt.invocation(rt.invocations().query("target == 'Replay/journey'").id.iloc[0])
    assert root.attempts >= 3  # suspended at the call, the sleep and the run
    task = asyncio.ensure_future(rt.service_call(waits_for_awakeable))
    await rt.settle()
    assert rt.invocations().query("target == 'Replay/waits_for_awakeable'").status.iloc[0] == "suspended"
    rt.resolve_awakeable(rt.state("Store", "awk")["value"], "hello")
    assert await task == "hello"


async def test_a_changed_code_path_is_a_journal_mismatch_reported_with_the_diverging_entry() -> None:
    rt = make("always_suspend")
    with pytest.raises(restate.TerminalError) as ei:
        await rt.object_call(set_different_key, key="k")
    assert ei.value.status_code == 570  # killed after max attempts with the last error
    inv = rt.invocation(rt.invocations().query("target == 'NonDet/k/set_different_key'").id.iloc[0])
    mismatch = inv.errors[-1]
    assert mismatch.code == 570 and "mismatch" in mismatch.message and "'a' != 'b'" in mismatch.message
    assert mismatch.related_command == "journal entry 1, which recorded Command: SetState 'a' = 1"
    assert rt.state("Store", "after") == {}  # the send after the divergence never happened


async def test_the_same_handler_completes_in_normal_mode_because_nothing_is_replayed() -> None:
    rt = make()
    await rt.object_call(set_different_key, key="k")
    await rt.settle()
    assert rt.state("NonDet", "k") == {"a": 1} and rt.state("Store", "after") == {"value": "sent"}


def test_an_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="always_suspend"):
        pg.Runtime(mode="replay")
