"""An ingress await that can never complete raises with what it waits on; the runtime stays usable."""

from __future__ import annotations

import pytest
import restate

import playground as pg

waiter = restate.Service("Waiter")


@waiter.handler()
async def wait_forever(ctx: restate.Context) -> str:
    _id, fut = ctx.awakeable()
    return await fut


@waiter.handler()
async def wait_for_signal(ctx: restate.Context) -> str:
    return await ctx.signal("go")


@waiter.handler()
async def call_waiter(ctx: restate.Context) -> str:
    return await ctx.service_call(wait_forever, arg=None)


flow = restate.Workflow("Flow")


@flow.main()
async def await_promise(ctx: restate.WorkflowContext) -> str:
    return await ctx.promise("approval").value()


cyc = restate.VirtualObject("Cyc")


@cyc.handler()
async def call_self(ctx: restate.ObjectContext) -> str:
    return await ctx.object_call(call_self, key=ctx.key(), arg=None)


@cyc.handler()
async def hop(ctx: restate.ObjectContext, path: list) -> str:
    if not path:
        return "end"
    nxt, *rest = path
    return await ctx.object_call(hop, key=nxt, arg=rest)


def make() -> pg.Runtime:
    return pg.Runtime(waiter, flow, cyc)


async def test_an_awakeable_nothing_holds_raises_stuck_naming_it() -> None:
    rt = make()
    with pytest.raises(pg.StuckError) as ei:
        await rt.service_call(wait_forever)
    msg = str(ei.value)
    assert "can never complete" in msg and "Waiter/wait_forever" in msg
    assert "awakeable" in msg and "rt.cancel" in msg
    assert rt.invocation(ei.value.invocation_id).status == "running"


async def test_a_named_signal_nothing_sends_raises_stuck() -> None:
    with pytest.raises(pg.StuckError, match="signal"):
        await make().service_call(wait_for_signal)


async def test_the_explanation_follows_a_call_chain_to_the_blocked_callee() -> None:
    rt = make()
    with pytest.raises(pg.StuckError) as ei:
        await rt.service_call(call_waiter)
    msg = str(ei.value)
    assert "its call to Waiter/wait_forever" in msg
    assert msg.index("Waiter/call_waiter") < msg.index("Waiter/wait_forever is running")


async def test_a_promise_nothing_resolves_raises_stuck_naming_the_promise() -> None:
    with pytest.raises(pg.StuckError, match="durable promise 'approval'"):
        await make().workflow_call(await_promise, key="w")


async def test_a_cancel_unblocks_a_stuck_invocation_and_the_runtime_stays_usable() -> None:
    rt = make()
    with pytest.raises(pg.StuckError) as ei:
        await rt.service_call(wait_forever)
    rt.cancel(ei.value.invocation_id)
    with pytest.raises(restate.TerminalError) as te:
        await rt.attach(ei.value.invocation_id)
    assert (te.value.status_code, te.value.message) == (409, "cancelled")
    rt.cancel(ei.value.invocation_id)  # cancelling a finished invocation is a harmless no-op
    assert rt.invocation(ei.value.invocation_id).status == "completed"


async def test_a_deadlock_is_reported_as_a_deadlock_error_not_a_plain_stuck_error() -> None:
    rt = make()
    with pytest.raises(pg.DeadlockError) as ei:
        await rt.object_call(call_self, key="A")
    assert isinstance(ei.value, pg.StuckError)  # one except clause catches both
    assert "deadlock" in str(ei.value) and "Cyc/A/call_self" in str(ei.value)
