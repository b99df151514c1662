"""The runtime speaks service protocol v5, v6 and v7 (v7 preferred); the layouts that differ are handled."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import restate

import playground as pg
from playground.protocol import framing, messages
from playground.protocol.driver import Attempt, AttemptEnded, Received, content_type_for

effects: list[str] = []
svc = restate.Service("Versions")


@svc.handler()
async def echo(ctx: restate.Context, x: str) -> str:
    return x


@svc.handler()
async def mixed(ctx: restate.Context, x: str) -> list:
    def effect() -> str:
        effects.append(x)
        return f"ran {x}"

    a = await ctx.run_typed("effect", effect)
    b = await ctx.service_call(echo, arg=x)
    await ctx.sleep(timedelta(minutes=5))
    return [a, b]


@pytest.mark.parametrize("version", [5, 6, 7])
async def test_runs_calls_and_sleeps_work_at_each_protocol_version(version: int) -> None:
    effects.clear()
    rt = pg.Runtime(svc)
    rt._services["Versions"].deployment.version = version
    assert await rt.service_call(mixed, arg="v") == ["ran v", "v"]
    assert effects == ["v"]
    kinds = list(rt.journal(rt.invocations().id.iloc[0]).entry_type)
    assert kinds[1:3] == ["Command: Run", "Notification: Run"]


def test_discovery_picks_v7_when_the_app_offers_it() -> None:
    rt = pg.Runtime(svc)
    assert rt._services["Versions"].deployment.version == 7


@pytest.mark.parametrize("version", [5, 6, 7])
async def test_a_suspension_is_read_in_the_layout_of_its_version(version: int) -> None:
    app = restate.app([svc])
    attempt = Attempt(app, "Versions", "mixed", content_type=content_type_for(version))
    start = messages.new("Start", id=b"\x07" * 16, debug_id="inv_1x")
    inp = messages.new("Input", value=messages.new("Value", content=b'"s"'))
    run = messages.new("Run", result_completion_id=1, name="effect")
    done = messages.new("RunCompletion", completion_id=1, value=messages.new("Value", content=b'"ran s"'))
    # replay the run, then close the body: the SDK must suspend on the call it makes next
    items: list[Received] = []
    ended: asyncio.Future[AttemptEnded] = asyncio.get_running_loop().create_future()

    def on_message(item: Received) -> None:
        items.append(item)
        if item.name == "Call":
            attempt.close_input()

    attempt.on_message, attempt.on_end = on_message, ended.set_result
    attempt.start(start, [framing.encode(m) for m in (inp, run, done)])
    await ended
    suspension = next((item for item in items if item.name == "Suspension"), None)
    assert suspension is not None
    item = suspension
    fut = item.msg.awaiting_on
    # the call's result completion, and the cancel signal every await includes; a v5/v6 frame read with the v7
    # layout would come out empty
    assert list(fut.waiting_completions) == [3]
    assert list(fut.waiting_signals) == [messages.CANCEL_SIGNAL]
