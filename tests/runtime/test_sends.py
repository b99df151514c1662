"""One-way sends and delayed sends, from cells and from handlers."""

from __future__ import annotations

from datetime import timedelta

import restate

import playground as pg

log = restate.VirtualObject("Log")


@log.handler()
async def append(ctx: restate.ObjectContext, item: str) -> list:
    items = (await ctx.get("items") or []) + [item]
    ctx.set("items", items)
    return items


@log.handler()
async def slow_append(ctx: restate.ObjectContext, item: str) -> None:
    await ctx.sleep(timedelta(hours=1))
    ctx.set("items", (await ctx.get("items") or []) + [item])


sender = restate.Service("Sender")


@sender.handler()
async def fire(ctx: restate.Context, key: str) -> str:
    handle = ctx.object_send(slow_append, key=key, arg="sent")
    return await handle.invocation_id()


@sender.handler()
async def schedule(ctx: restate.Context, key: str) -> str:
    handle = ctx.object_send(append, key=key, arg="later", send_delay=timedelta(hours=5))
    return await handle.invocation_id()


wf = restate.Workflow("Job")


@wf.main()
async def job(ctx: restate.WorkflowContext, what: str) -> str:
    ctx.set("did", what)
    return what


greeter = restate.Service("Greeter2")


@greeter.handler()
async def hello(ctx: restate.Context, name: str) -> str:
    ctx_log.append(name)
    return f"hi {name}"


ctx_log: list[str] = []


@sender.handler()
async def send_all(ctx: restate.Context, key: str) -> list:
    ids = [
        await ctx.service_send(hello, arg=key).invocation_id(),
        await ctx.object_send(append, key=key, arg="x").invocation_id(),
        await ctx.workflow_send(job, key=key, arg="y").invocation_id(),
    ]
    return ids


def make() -> pg.Runtime:
    return pg.Runtime(log, sender, wf, greeter)


async def test_send_returns_the_target_id_at_once_and_the_sender_does_not_wait() -> None:
    rt = make()
    target_id = await rt.service_call(fire, arg="k")
    # the sender finished while the target still sleeps for an hour
    assert rt.invocation(target_id).status in ("running", "suspended")
    assert rt.state("Log", "k") == {}
    assert rt.now == pg.Runtime().now  # no time passed
    await rt.advance(timedelta(hours=1))
    assert rt.invocation(target_id).status == "completed"
    assert rt.state("Log", "k") == {"items": ["sent"]}


async def test_sends_reach_a_service_an_object_and_a_workflow() -> None:
    rt = make()
    ids = await rt.service_call(send_all, arg="w1")
    await rt.settle()
    targets = [rt.invocation(i).target for i in ids]
    assert [str(t) for t in targets] == ["Greeter2/hello", "Log/w1/append", "Job/w1/job"]
    assert all(rt.invocation(i).status == "completed" for i in ids)
    assert rt.output(ids[0]) == "hi w1" and rt.state("Job", "w1") == {"did": "y"}
    root = rt.invocations().query("target == 'Sender/send_all'").id.iloc[0]
    j = rt.journal(root)
    assert list(j.entry_type[1:7]) == ["Command: OneWayCall", "Notification: CallInvocationId"] * 3


async def test_delayed_send_from_a_handler_is_scheduled_until_due_on_the_virtual_clock() -> None:
    rt = make()
    start = rt.now
    target_id = await rt.service_call(schedule, arg="d")
    row = rt.invocations().set_index("id").loc[target_id]
    assert row.status == "scheduled"
    assert row.scheduled_start_at.to_pydatetime() == start + timedelta(hours=5)
    await rt.advance(timedelta(hours=4, minutes=59))
    assert rt.invocation(target_id).status == "scheduled"
    await rt.advance(timedelta(minutes=1))
    assert rt.invocation(target_id).status == "completed"
    assert rt.state("Log", "d") == {"items": ["later"]}
    assert rt.now == start + timedelta(hours=5)
    j = rt.journal(rt.invocations().query("target == 'Sender/schedule'").id.iloc[0])
    ow = j[j.entry_type == "Command: OneWayCall"].iloc[0]
    assert ow.sleep_wakeup_at.to_pydatetime() == start + timedelta(hours=5)


async def test_ingress_send_with_delay_returns_accepted_handle_and_runs_when_due() -> None:
    rt = make()
    h = await rt.object_send(append, key="i", arg="hello", send_delay=timedelta(minutes=30))
    assert h.status == "Accepted" and h.invocation_id.startswith("inv_")
    assert h.execution_time == rt.now + timedelta(minutes=30)
    await rt.settle()
    assert rt.invocation(h.invocation_id).status == "scheduled"
    # attaching skips virtual time to the due moment instead of waiting
    assert await rt.attach(h.invocation_id) == ["hello"]
    assert rt.now == h.execution_time


async def test_many_delayed_sends_fire_in_due_order_then_creation_order() -> None:
    rt = make()
    for i, minutes in enumerate([30, 10, 30, 20]):
        await rt.object_send(append, key="o", arg=f"{i}@{minutes}", send_delay=timedelta(minutes=minutes))
    await rt.advance(timedelta(hours=1))
    assert rt.state("Log", "o") == {"items": ["1@10", "3@20", "0@30", "2@30"]}
