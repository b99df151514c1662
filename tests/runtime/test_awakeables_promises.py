"""Awakeables and durable promises completed from cells; attach and output by workflow id or idempotency key."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest
import restate

import playground as pg

holder = restate.VirtualObject("Holder")


@holder.handler()
async def wait_for_payment(ctx: restate.ObjectContext) -> str:
    awk_id, fut = ctx.awakeable()
    ctx.set("awakeable", awk_id)
    try:
        return f"paid {await fut}"
    except restate.TerminalError as e:
        return f"refused {e.status_code} {e.message}"


@holder.handler(kind="shared")
async def awakeable_of(ctx: restate.ObjectSharedContext) -> str | None:
    return await ctx.get("awakeable")


payer = restate.Service("Payer")


@payer.handler()
async def pay(ctx: restate.Context, req: dict) -> None:
    ctx.resolve_awakeable(req["id"], req["amount"])


order = restate.Workflow("Order")


@order.main()
async def place(ctx: restate.WorkflowContext, item: str) -> str:
    approval = await ctx.promise("approval").value()
    return f"{item}: {approval}"


def make() -> pg.Runtime:
    return pg.Runtime(holder, payer, order)


async def _started_awakeable(rt: pg.Runtime, key: str) -> tuple[asyncio.Future, str]:
    call = asyncio.ensure_future(rt.object_call(wait_for_payment, key=key))
    await rt.settle()
    return call, rt.state("Holder", key)["awakeable"]


async def test_an_awakeable_resolved_from_a_cell_wakes_the_handler() -> None:
    rt = make()
    call, awk_id = await _started_awakeable(rt, "a")
    assert awk_id.startswith("sign_1")
    rt.resolve_awakeable(awk_id, 42)
    assert await call == "paid 42"
    j = rt.journal(rt.invocations().id.iloc[0])
    assert "Notification: Signal" in list(j.entry_type)


async def test_an_awakeable_rejected_from_a_cell_raises_terminal_error_in_the_handler() -> None:
    rt = make()
    call, awk_id = await _started_awakeable(rt, "r")
    rt.reject_awakeable(awk_id, "card declined", code=402)
    assert await call == "refused 402 card declined"


async def test_an_awakeable_resolved_by_another_handler_wakes_its_owner() -> None:
    rt = make()
    call, awk_id = await _started_awakeable(rt, "h")
    await rt.service_call(pay, arg={"id": awk_id, "amount": 7})
    assert await call == "paid 7"


async def test_resolving_an_awakeable_twice_keeps_the_first_value_as_restate_does() -> None:
    rt = make()
    call, awk_id = await _started_awakeable(rt, "t")
    rt.resolve_awakeable(awk_id, 1)
    rt.resolve_awakeable(awk_id, 2)  # accepted, ignored
    assert await call == "paid 1"
    rt.resolve_awakeable(awk_id, 3)  # after completion too
    j = rt.journal(rt.invocations().id.iloc[0])
    assert list(j.entry_type).count("Notification: Signal") == 1


def test_bad_awakeable_ids_are_rejected_clearly() -> None:
    rt = make()
    with pytest.raises(ValueError, match="not an awakeable id"):
        rt.resolve_awakeable("inv_123", 1)
    foreign = "sign_1" + base64.urlsafe_b64encode(b"\x09" * 16 + (17).to_bytes(4, "big")).decode().rstrip("=")
    with pytest.raises(KeyError, match="owns awakeable"):
        rt.resolve_awakeable(foreign, 1)  # well formed, but no invocation here created it


async def test_a_workflow_promise_resolved_from_a_cell_completes_the_run() -> None:
    rt = make()
    h = await rt.workflow_send(place, key="o1", arg="tea")
    await rt.settle()
    with pytest.raises(pg.NotReady):
        rt.output(place, key="o1")
    rt.resolve_promise("Order", "o1", "approval", "approved")
    assert await rt.attach(place, key="o1") == "tea: approved"
    assert rt.output(place, key="o1") == "tea: approved" == rt.output(h.invocation_id)
    with pytest.raises(restate.TerminalError) as ei:
        rt.resolve_promise("Order", "o1", "approval", "again")
    assert (ei.value.status_code, ei.value.message) == (409, "promise was already completed")


async def test_a_rejected_promise_fails_the_run_with_its_code() -> None:
    rt = make()
    await rt.workflow_send(place, key="o2", arg="tea")
    await rt.settle()
    rt.reject_promise("Order", "o2", "approval", "out of stock", code=410)
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(place, key="o2")
    assert (ei.value.status_code, ei.value.message) == (410, "out of stock")


async def test_attach_and_output_by_idempotency_key() -> None:
    rt = make()
    await rt.object_send(wait_for_payment, key="i", idempotency_key="pay-1")
    await rt.settle()
    with pytest.raises(pg.NotReady):
        rt.output(wait_for_payment, key="i", idempotency_key="pay-1")
    waiting = asyncio.ensure_future(rt.attach(wait_for_payment, key="i", idempotency_key="pay-1"))
    await rt.settle()
    rt.resolve_awakeable(rt.state("Holder", "i")["awakeable"], 5)
    assert await waiting == "paid 5"
    assert rt.output(wait_for_payment, key="i", idempotency_key="pay-1") == "paid 5"


async def test_attach_needs_an_id_a_workflow_or_an_idempotency_key() -> None:
    rt = make()
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(wait_for_payment, key="x")
    assert ei.value.status_code == 400 and "idempotency key" in ei.value.message
    with pytest.raises(restate.TerminalError) as ei:
        rt.output(place, key="never-ran")
    assert (ei.value.status_code, ei.value.message) == (404, "invocation not found")  # Restate's wording
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(place, key="never-ran")
    assert (ei.value.status_code, ei.value.message) == (404, "not found")
    with pytest.raises(TypeError, match="not both"):
        rt.output("inv_1", key="k")


attacher = restate.Service("Attacher")


@attacher.handler()
async def attach_to(ctx: restate.Context, inv_id: str) -> str:
    return await ctx.attach_invocation(inv_id)


async def test_a_handler_can_attach_to_another_invocation() -> None:
    rt = pg.Runtime(holder, attacher)
    h = await rt.object_send(wait_for_payment, key="c")
    await rt.settle()
    waiting = asyncio.ensure_future(rt.service_call(attach_to, arg=h.invocation_id))
    await rt.settle()
    rt.resolve_awakeable(rt.state("Holder", "c")["awakeable"], 9)
    assert await waiting == "paid 9"
    await rt.advance(timedelta(seconds=1))
