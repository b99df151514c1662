"""Request-response calls, from cells and from handlers, to Services, Virtual Objects and Workflows."""

from __future__ import annotations

from datetime import timedelta

import pytest
import restate

import playground as pg

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    value = (await ctx.get("count") or 0) + n
    ctx.set("count", value)
    return value


signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: restate.WorkflowContext, email: str) -> str:
    ctx.set("email", email)
    return f"welcome {email}"


caller = restate.Service("Caller")


@caller.handler()
async def call_all(ctx: restate.Context, name: str) -> list:
    a = await ctx.service_call(greet, arg=name)
    b = await ctx.object_call(add, key=name, arg=3)
    c = await ctx.workflow_call(run, key=name, arg=f"{name}@example.com")
    return [a, b, c]


failing = restate.Service("Failing")


@failing.handler()
async def refuse(ctx: restate.Context, why: str) -> str:
    raise restate.TerminalError(f"no: {why}", 422, metadata={"reason": why})


@failing.handler()
async def catch_and_report(ctx: restate.Context, why: str) -> dict:
    try:
        await ctx.service_call(refuse, arg=why)
    except restate.TerminalError as e:
        return {"code": e.status_code, "message": e.message, "metadata": e.metadata}
    return {}


@failing.handler()
async def propagate(ctx: restate.Context, why: str) -> str:
    return await ctx.service_call(refuse, arg=why)


def rt_all() -> pg.Runtime:
    return pg.Runtime(greeter, counter, signup, caller, failing)


async def test_service_call_from_a_cell_returns_the_handler_result() -> None:
    assert await rt_all().service_call(greet, arg="Ann") == "Hello Ann"


async def test_object_calls_keep_state_per_key() -> None:
    rt = rt_all()
    a1 = await rt.object_call(add, key="a", arg=1)
    a2 = await rt.object_call(add, key="a", arg=2)
    b1 = await rt.object_call(add, key="b", arg=10)
    assert (a1, a2, b1, rt.state("Counter", "a"), rt.state("Counter", "b")) == (1, 3, 10, {"count": 3}, {"count": 10})


async def test_handler_calls_to_service_object_and_workflow_are_their_own_invocations() -> None:
    rt = rt_all()
    assert await rt.service_call(call_all, arg="mary") == ["Hello mary", 3, "welcome mary@example.com"]
    df = rt.invocations()
    root = df[df.target == "Caller/call_all"].iloc[0]
    children = df[df.invoked_by_id == root.id]
    assert sorted(children.target) == ["Counter/mary/add", "Greeter/greet", "Signup/mary/run"]
    assert set(children.invoked_by) == {"service"} and set(children.status) == {"completed"}
    assert set(children.invoked_by_target) == {"Caller/call_all"}
    assert root.invoked_by == "ingress"
    j = rt.journal(root.id)
    kinds = list(j.entry_type)
    assert kinds[0] == "Command: Input" and kinds[-1] == "Command: Output"
    # each call journals the Call command, its invocation id, then its result
    assert kinds[1:10] == ["Command: Call", "Notification: CallInvocationId", "Notification: Call"] * 3
    ids_in_journal = list(j[j.entry_type == "Notification: CallInvocationId"].payload)
    assert ids_in_journal == list(j[j.entry_type == "Command: Call"].invoked_id)
    assert set(ids_in_journal) == set(children.id)
    assert all(i.startswith("inv_") for i in ids_in_journal)
    assert list(j[j.entry_type == "Command: Call"].invoked_target) == ["Greeter/greet", "Counter/mary/add",
                                                                       "Signup/mary/run"]
    assert rt.state("Signup", "mary") == {"email": "mary@example.com"}


async def test_terminal_error_reaches_an_ingress_caller_with_code_message_and_metadata() -> None:
    rt = rt_all()
    with pytest.raises(restate.TerminalError) as ei:
        await rt.service_call(refuse, arg="busy")
    assert (ei.value.status_code, ei.value.message, ei.value.metadata) == (422, "no: busy", {"reason": "busy"})
    df = rt.invocations()
    row = df[df.target == "Failing/refuse"].iloc[0]
    assert row.completion_result == "failure" and row.completion_failure == "[422] no: busy"
    assert row.retry_count == 0  # terminal errors are not retried


async def test_terminal_error_reaches_a_calling_handler_and_propagates_when_uncaught() -> None:
    rt = rt_all()
    caught = await rt.service_call(catch_and_report, arg="x")
    assert caught == {"code": 422, "message": "no: x", "metadata": {"reason": "x"}}
    with pytest.raises(restate.TerminalError) as ei:
        await rt.service_call(propagate, arg="y")
    assert ei.value.status_code == 422 and ei.value.message == "no: y"
    assert ei.value.metadata == {"reason": "y"}


async def test_generic_call_and_send_carry_raw_bytes() -> None:
    raw = restate.Service("Raw")

    @raw.handler(input_serde=restate.serde.BytesSerde(), output_serde=restate.serde.BytesSerde(),
                 accept="*/*", content_type="application/octet-stream")
    async def echo(ctx: restate.Context, data: bytes) -> bytes:
        return data[::-1]

    proxy = restate.Service("Proxy")

    @proxy.handler()
    async def forward(ctx: restate.Context, req: dict) -> list:
        out = await ctx.generic_call(req["service"], req["handler"], bytes(req["message"]), key=req.get("key"))
        h = ctx.generic_send(req["service"], req["handler"], bytes(req["message"]), key=req.get("key"))
        await h.invocation_id()
        return list(out)

    rt = pg.Runtime(raw, proxy, greeter)
    payload = bytes(range(256))
    assert await rt.generic_call("Raw", "echo", payload) == payload[::-1]
    assert await rt.generic_call("Greeter", "greet", b'"Bo"') == b'"Hello Bo"'
    assert await rt.service_call(forward, arg={"service": "Raw", "handler": "echo", "message": [1, 2, 3]}) == [3, 2, 1]
    h = await rt.generic_send("Greeter", "greet", b'"Cy"')
    await rt.settle()
    assert rt.output(h.invocation_id) == "Hello Cy"


async def test_call_future_invocation_id_is_the_callee_id() -> None:
    svc = restate.Service("IdProbe")

    @svc.handler()
    async def probe(ctx: restate.Context) -> list:
        fut = ctx.service_call(greet, arg="z")
        inv_id = await fut.invocation_id()
        return [inv_id, await fut]

    rt = pg.Runtime(svc, greeter)
    inv_id, value = await rt.service_call(probe)
    assert value == "Hello z"
    assert rt.invocations().set_index("id").loc[inv_id].target == "Greeter/greet"


async def test_completed_invocations_are_purged_after_the_journal_retention() -> None:
    kept = restate.Service("Kept", journal_retention=timedelta(hours=2))

    @kept.handler()
    async def noop(ctx: restate.Context) -> None:
        return None

    rt = pg.Runtime(greeter, kept)
    await rt.service_call(greet, arg="a")
    await rt.service_call(noop)
    await rt.advance(timedelta(hours=2))
    assert list(rt.invocations().target) == ["Greeter/greet"]  # Kept's journal retention is 2 h
    await rt.advance(timedelta(hours=22))
    assert rt.invocations().empty  # Restate's default: one day
