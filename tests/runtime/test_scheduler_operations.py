"""Operations from a cell (rt.cancel, rt.kill, rt.pause, rt.resume, completing awakeables and promises) as
scheduler events of kind "operation": checked at once, acting at once under the default strategy, and
waiting for their turn, as their own request, under a strategy that holds them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import restate

import playground as pg
from playground.runtime.scheduler import AsPosted, Event, NewestSourceFirst, OldestFirst, Stepwise, Strategy

ops = restate.Service("OpsSvc")


@ops.handler()
async def nap(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(seconds=1))
    return "rested"


@ops.handler()
async def wait_for_payment(ctx: restate.Context) -> str:
    _awk_id, fut = ctx.awakeable()
    return f"paid {await fut}"


approval = restate.Workflow("OpsApproval")


@approval.main()
async def decide(ctx: restate.WorkflowContext) -> str:
    return await ctx.promise("verdict").value()


class Recording(Strategy):
    """Picks as `inner` does, and records what ran in the order chosen."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.holds, self.one_at_a_time = inner.holds, inner.one_at_a_time
        self.chosen: list[Event] = []

    def choose(self, ready):
        pick = self.inner.choose(ready)
        self.chosen.append(ready[pick])
        return pick


def first_words(strategy: Recording) -> list[str]:
    return [e.what.split(" ", 1)[0] for e in strategy.chosen]


async def cancel_after_send(strategy: Strategy) -> tuple[pg.Runtime, str]:
    rt = pg.Runtime(ops)
    rt.scheduler.strategy = strategy
    handle = await rt.service_send(nap)
    rt.cancel(handle.invocation_id)
    await rt.settle()
    return rt, handle.invocation_id


async def test_an_operation_is_an_event_of_its_own_request_that_the_strategy_orders() -> None:
    # the cell's send was accepted before it cancelled: its enqueue goes first; then the invocation's start
    # and the cancel are both ready, and the strategy picks
    oldest, newest = Recording(OldestFirst()), Recording(NewestSourceFirst())
    rt, inv_id = await cancel_after_send(oldest)
    assert first_words(oldest)[:2] == ["enqueue", "cancel"]
    cancel = oldest.chosen[1]
    assert (cancel.kind, cancel.source[0], cancel.what) == ("operation", "operation", f"cancel {inv_id}")
    with pytest.raises(KeyError):  # cancelled before it started: ended at once, then forgotten (409 canceled)
        rt.invocation(inv_id)
    rt.close()
    rt, inv_id = await cancel_after_send(newest)
    assert first_words(newest)[:3] == ["enqueue", "start", "cancel"]
    inv = rt.invocation(inv_id)  # started, then cancelled: its handler saw the cancellation (the SDK's spelling)
    assert inv.attempts == 1 and (inv.result.code, inv.result.message) == (409, "cancelled")
    rt.close()


async def test_under_the_default_strategy_an_operation_acts_at_once() -> None:
    rt = pg.Runtime(ops, approval)
    assert isinstance(rt.scheduler.strategy, AsPosted)
    handle = await rt.service_send(nap)
    rt.cancel(handle.invocation_id)
    assert not rt.scheduler.pending and rt.scheduler.ran == 0
    journal = rt.invocation(handle.invocation_id).journal
    assert journal[-1].msg.DESCRIPTOR.name == "Signal"  # stored before cancel returned
    rt.resolve_promise("OpsApproval", "a", "verdict", "yes")
    with pytest.raises(restate.TerminalError, match="promise was already completed"):  # completed already
        rt.reject_promise("OpsApproval", "a", "verdict", "no")
    assert await rt.workflow_call(decide, key="a") == "yes"
    rt.close()


async def test_stepwise_defers_an_operation_until_its_turn() -> None:
    rt = pg.Runtime(ops)
    rt.scheduler.strategy = Stepwise()
    call = asyncio.ensure_future(rt.service_call(wait_for_payment))
    await rt.settle()
    [inv] = list(rt.all_invocations())
    assert inv.status == "running"  # awaiting its awakeable
    size = len(inv.journal)
    rt.cancel(inv.id)
    assert rt.scheduler.pending and len(inv.journal) == size and inv.status != "completed"  # not yet
    with pytest.raises(restate.TerminalError, match="cancelled"):
        await call
    assert inv.result.code == 409
    rt.close()


async def test_operations_the_cell_makes_one_after_another_land_in_that_order() -> None:
    # the newest source first, yet the cell's second operation (and a send made after them) waits for the
    # first: each was accepted when the call returned
    strategy = Recording(NewestSourceFirst())
    rt = pg.Runtime(approval)
    rt.scheduler.strategy = strategy
    rt.resolve_promise("OpsApproval", "a", "verdict", "first")
    rt.reject_promise("OpsApproval", "b", "verdict", "second", code=403)
    handle = await rt.workflow_send(decide, key="a")
    await rt.settle()
    assert first_words(strategy)[:3] == ["complete", "complete", "enqueue"]
    assert [e.source[0] for e in strategy.chosen[:3]] == ["operation", "operation", "ingress"]
    assert rt.output(handle.invocation_id) == "first"
    rt.close()


async def test_a_held_promise_completion_tells_the_409_at_once_and_the_first_completion_wins() -> None:
    rt = pg.Runtime(approval)
    rt.scheduler.strategy = Stepwise()
    rt.resolve_promise("OpsApproval", "a", "verdict", "yes")
    with pytest.raises(restate.TerminalError) as ei:  # the first one is still in the queue, and lands first
        rt.reject_promise("OpsApproval", "a", "verdict", "no")
    assert (ei.value.status_code, ei.value.message) == (409, "promise was already completed")
    assert await rt.workflow_call(decide, key="a") == "yes"
    with pytest.raises(restate.TerminalError, match="promise was already completed"):
        rt.resolve_promise("OpsApproval", "a", "verdict", "again")
    rt.close()


async def test_bad_input_to_an_operation_raises_before_anything_is_posted() -> None:
    strategy = Recording(Stepwise())
    rt = pg.Runtime(ops, approval)
    rt.scheduler.strategy = strategy
    handle = await rt.service_send(nap)  # pending: its enqueue waits in the queue
    with pytest.raises(ValueError, match="has not started yet; cancel it instead"):
        rt.pause(handle.invocation_id)
    with pytest.raises(ValueError, match="invocation_id"):
        rt.cancel("not an id")
    with pytest.raises(KeyError):
        rt.kill("inv_1" + "0" * 33)
    with pytest.raises(ValueError, match="is pending, not paused"):
        rt.resume(handle.invocation_id)
    with pytest.raises(TypeError, match="awakeable_id must be the str id of an awakeable"):
        rt.resolve_awakeable(7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="code must be an error code between 0 and 65535"):
        rt.reject_promise("OpsApproval", "a", "verdict", "no", code=70000)
    with pytest.raises(ValueError, match="'Nope' is not a registered workflow"):
        rt.resolve_promise("Nope", "a", "verdict")
    await rt.advance(timedelta(seconds=1))
    assert rt.invocation(handle.invocation_id).status == "completed"
    assert strategy.chosen and all(e.kind != "operation" for e in strategy.chosen)
    rt.close()
