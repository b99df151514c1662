"""Workflows: run once per id, other handlers during and after the run, retention on the virtual clock, promises."""

from __future__ import annotations

from datetime import timedelta

import pytest
import restate

import playground as pg

runs: list[str] = []

signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: restate.WorkflowContext, email: str) -> str:
    runs.append(email)
    ctx.set("status", "waiting for click")
    clicked = await ctx.promise("click").value()
    ctx.set("status", f"verified via {clicked}")
    return f"{email} verified"


@signup.handler()
async def status(ctx: restate.WorkflowSharedContext) -> str:
    return await ctx.get("status") or "unknown"


@signup.handler()
async def click(ctx: restate.WorkflowSharedContext, via: str) -> str:
    await ctx.promise("click").resolve(via)
    return "ok"


@signup.handler()
async def peek_click(ctx: restate.WorkflowSharedContext) -> str | None:
    return await ctx.promise("click").peek()


short = restate.Workflow("Short")


@short.main(workflow_retention=timedelta(minutes=10))
async def quick_run(ctx: restate.WorkflowContext, n: int) -> int:
    runs.append(f"short {n}")
    ctx.set("n", n)
    return n


@short.handler()
async def read_n(ctx: restate.WorkflowSharedContext) -> int | None:
    return await ctx.get("n")


starter = restate.Service("Starter")


@starter.handler()
async def start_twice(ctx: restate.Context, wf_id: str) -> list:
    first = await ctx.workflow_call(quick_run, key=wf_id, arg=1)
    try:
        await ctx.workflow_call(quick_run, key=wf_id, arg=2)
    except restate.TerminalError as e:
        return [first, e.status_code, e.message]
    return [first]


def make() -> pg.Runtime:
    runs.clear()
    return pg.Runtime(signup, short, starter)


async def test_run_executes_once_and_a_second_call_fails_with_409() -> None:
    rt = make()
    assert await rt.workflow_call(quick_run, key="w", arg=1) == 1
    with pytest.raises(restate.TerminalError) as ei:
        await rt.workflow_call(quick_run, key="w", arg=2)
    assert (ei.value.status_code, ei.value.message) == (409, "the workflow method was already invoked")
    assert runs == ["short 1"]
    assert await rt.workflow_call(quick_run, key="other", arg=3) == 3


async def test_a_second_call_fails_with_409_even_while_the_first_runs() -> None:
    rt = make()
    h = await rt.workflow_send(run, key="u1", arg="a@x")
    await rt.settle()
    with pytest.raises(restate.TerminalError) as ei:
        await rt.workflow_call(run, key="u1", arg="b@x")
    assert ei.value.status_code == 409
    again = await rt.workflow_send(run, key="u1", arg="c@x")
    assert again.status == "PreviouslyAccepted" and again.invocation_id == h.invocation_id
    assert h.status == "Accepted"
    assert runs == ["a@x"]


async def test_a_handler_calling_run_twice_gets_409_the_second_time() -> None:
    rt = make()
    assert await rt.service_call(start_twice, arg="w2") == [1, 409, "the workflow method was already invoked"]


async def test_other_handlers_work_during_the_run_and_resolve_its_promise() -> None:
    rt = make()
    h = await rt.workflow_send(run, key="u2", arg="me@x")
    await rt.settle()
    assert await rt.workflow_call(status, key="u2") == "waiting for click"
    assert await rt.workflow_call(peek_click, key="u2") is None
    assert await rt.workflow_call(click, key="u2", arg="email link") == "ok"
    assert await rt.attach(h.invocation_id) == "me@x verified"
    assert await rt.workflow_call(status, key="u2") == "verified via email link"
    assert await rt.workflow_call(peek_click, key="u2") == "email link"
    with pytest.raises(restate.TerminalError) as ei:
        await rt.workflow_call(click, key="u2", arg="again")
    assert (ei.value.status_code, ei.value.message) == (409, "promise was already completed")


async def test_a_promise_resolved_before_the_run_awaits_it_is_kept() -> None:
    rt = make()
    assert await rt.workflow_call(click, key="early", arg="sms") == "ok"
    assert await rt.workflow_call(run, key="early", arg="e@x") == "e@x verified"


async def test_after_retention_the_state_is_gone_and_run_may_execute_again() -> None:
    rt = make()
    first = await rt.workflow_send(quick_run, key="r", arg=7)
    await rt.settle()
    await rt.advance(timedelta(minutes=9))
    assert await rt.workflow_call(read_n, key="r") == 7  # within retention
    assert (await rt.workflow_send(quick_run, key="r", arg=8)).status == "PreviouslyAccepted"
    await rt.advance(timedelta(minutes=1))
    assert await rt.workflow_call(read_n, key="r") is None
    assert rt.state("Short", "r") == {}
    assert first.invocation_id not in set(rt.invocations().id)
    again = await rt.workflow_send(quick_run, key="r", arg=9)
    assert again.status == "Accepted"
    assert again.invocation_id == first.invocation_id  # Restate derives workflow ids from the key
    await rt.settle()
    assert runs == ["short 7", "short 9"]


async def test_default_workflow_retention_is_24_hours() -> None:
    rt = make()
    await rt.workflow_call(click, key="d", arg="x")
    await rt.workflow_call(run, key="d", arg="d@x")
    await rt.advance(timedelta(hours=23, minutes=59))
    assert await rt.workflow_call(status, key="d") == "verified via x"
    await rt.advance(timedelta(minutes=1))
    assert await rt.workflow_call(status, key="d") == "unknown"
