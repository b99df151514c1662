"""A call or send from a handler to a service or handler that is not registered (yet), as restate-server 1.7.12
does it: the command is rejected before it is journaled, the attempt fails with Restate's RT0018 text and is
retried on the caller's retry policy, and once the service is registered the next retry goes through. An
await that depends on such a caller raises StuckError naming the missing handler instead of hanging."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import restate

import playground as pg

effects: list[str] = []


def rejected(kind: str, index: int, target: str) -> str:
    """restate-server's message for a call or send to a handler it does not know (error code RT0018)."""
    return (f"cannot process command Command: {kind} (command index {index}) because of a failed precondition: "
            f"the service handler {target} was not found")


caller = restate.Service("MtCaller")


@caller.handler()
async def go(ctx: restate.Context, x: str) -> str:
    return (await ctx.generic_call("MtLate", "hello", f'"{x}"'.encode())).decode()


@caller.handler()
async def go_send(ctx: restate.Context, x: str) -> str:
    ctx.generic_send("MtLateObj", "remember", f'"{x}"'.encode(), key="k1")
    return "sent"


@caller.handler()
async def go_send_later(ctx: restate.Context, x: str) -> str:
    ctx.generic_send("MtLate", "hello", f'"{x}"'.encode(), send_delay=timedelta(hours=1))
    return "sent later"


@caller.handler()
async def go_unknown_handler(ctx: restate.Context, x: str) -> str:
    return (await ctx.generic_call("MtCaller", "added_later", f'"{x}"'.encode())).decode()


@caller.handler()
async def go_obj(ctx: restate.Context, x: str) -> str:
    return (await ctx.generic_call("MtLateObj", "remember", f'"{x}"'.encode(), key="k1")).decode()


@caller.handler()
async def go_after_run(ctx: restate.Context, x: str) -> str:
    ran = await ctx.run_typed("before", lambda: effects.append("before") or "ran")
    return (await ctx.generic_call("MtLate", "hello", f'"{x}"'.encode())).decode() + " " + ran


@caller.handler()
async def go_keyed_to_service(ctx: restate.Context, x: str) -> str:
    return (await ctx.generic_call("MtCaller", "go", f'"{x}"'.encode(), key="oops")).decode()


@caller.handler(invocation_retry_policy=restate.InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100), max_attempts=3, on_max_attempts="kill"))
async def go_then_give_up(ctx: restate.Context, x: str) -> str:
    return (await ctx.generic_call("MtNowhere", "hello", b'"x"')).decode()


@caller.handler(invocation_retry_policy=restate.InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100), max_attempts=3, on_max_attempts="pause"))
async def go_then_pause(ctx: restate.Context, x: str) -> str:
    return (await ctx.generic_call("MtNowhere", "hello", b'"x"')).decode()


front = restate.Service("MtFront")


@front.handler()
async def relay(ctx: restate.Context, x: str) -> str:
    return await ctx.service_call(go, arg=x)


late = restate.Service("MtLate")


@late.handler()
async def hello(ctx: restate.Context, x: str) -> str:
    effects.append(f"hello {x}")
    return f"late hello {x}"


late_obj = restate.VirtualObject("MtLateObj")


@late_obj.handler()
async def remember(ctx: restate.ObjectContext, x: str) -> str:
    ctx.set("x", x)
    return f"{ctx.key()} remembers {x}"


def caller_v2() -> restate.Service:
    """MtCaller again, now with the handler `go_unknown_handler` calls (a new revision of a known service)."""
    svc = restate.Service("MtCaller")
    for name, h in caller.handlers.items():
        svc.handler(name=name, invocation_retry_policy=h.invocation_retry_policy)(h.fn)

    @svc.handler()
    async def added_later(ctx: restate.Context, x: str) -> str:
        return f"added later {x}"
    return svc


def make(*extra: object, **kw: object) -> pg.Runtime:
    effects.clear()
    return pg.Runtime(caller, front, *extra, **kw)


def row(rt: pg.Runtime, invocation_id: str) -> dict:
    df = rt.invocations()
    return df[df.id == invocation_id].iloc[0].to_dict()


async def test_a_call_to_a_missing_service_is_not_journaled_and_the_caller_backs_off_with_restates_error() -> None:
    rt = make()
    h = await rt.service_send(go, arg="x")
    await rt.settle()
    r = row(rt, h.invocation_id)
    assert (r["status"], r["retry_count"], r["journal_size"]) == ("backing-off", 0, 1)
    assert r["last_failure"] == "[500 Internal] " + rejected("Call", 1, "MtLate/hello")
    assert r["last_failure_error_code"] == "RT0018"
    assert list(rt.journal(h.invocation_id).entry_type) == ["Command: Input"]

    # the default retry policy: 500 ms, then doubling
    assert rt.invocation(h.invocation_id).next_retry_at - 500 == rt.invocation(h.invocation_id).created_at
    await rt.advance(timedelta(seconds=5))
    r = row(rt, h.invocation_id)
    assert (r["status"], r["retry_count"], r["journal_size"]) == ("backing-off", 3, 1)  # at 0.5, 1.5, 3.5 s
    events = rt.sql(f"SELECT error_code, error_message, after_journal_entry_index FROM sys_journal_events "
                    f"WHERE id = '{h.invocation_id}'")
    assert len(events) == 4
    assert set(events.error_code) == {500} and set(events.after_journal_entry_index) == {0}
    assert set(events.error_message) == {rejected("Call", 1, "MtLate/hello")}
    assert set(rt.invocations().target_service_name) == {"MtCaller"}  # no callee was created


async def test_once_the_service_is_registered_the_next_retry_succeeds_with_a_consistent_journal() -> None:
    rt = make()
    h = await rt.service_send(go, arg="x")
    await rt.advance(timedelta(seconds=5))
    rt.register(late)
    assert await rt.attach(h.invocation_id) == '"late hello x"'
    assert list(rt.journal(h.invocation_id).entry_type) == [
        "Command: Input", "Command: Call", "Notification: CallInvocationId", "Notification: Call",
        "Command: Output"]
    assert rt.now.timestamp() - rt.invocation(h.invocation_id).created_at / 1000 == pytest.approx(7.5)
    assert effects == ["hello x"]  # one callee, called once
    assert len(rt.invocations().query("target_service_name == 'MtLate'")) == 1


async def test_an_await_on_a_caller_of_a_missing_handler_raises_stuck_naming_it_and_rt_register() -> None:
    rt = make()
    with pytest.raises(pg.StuckError) as ei:
        await rt.service_call(go, arg="x")
    msg = str(ei.value)
    assert "calls MtLate/hello, which Restate rejects (the service handler MtLate/hello was not found)" in msg
    assert "rt.register(...)" in msg and "rt.kill(" in msg
    assert rt.now == pg.Runtime().now  # it did not spin through the retries on the virtual clock

    [inv_id] = list(rt.invocations().id)
    assert ei.value.invocation_id == inv_id
    rt.register(late)  # the runtime is intact: registering lets it finish
    assert await rt.attach(inv_id) == '"late hello x"'


async def test_the_stuck_error_follows_a_call_chain_to_the_caller_of_the_missing_handler() -> None:
    rt = make()
    with pytest.raises(pg.StuckError) as ei:
        await rt.service_call(relay, arg="x")
    msg = str(ei.value)
    assert "MtFront/relay is running and waits for its call to MtCaller/go" in msg
    assert "MtCaller/go calls MtLate/hello, which Restate rejects" in msg
    assert rejected("Call", 1, "MtLate/hello") in msg


async def test_a_send_to_a_missing_object_is_rejected_the_same_way_and_delivered_once_registered() -> None:
    rt = make()
    h = await rt.service_send(go_send, arg="y")
    await rt.settle()
    r = row(rt, h.invocation_id)
    assert (r["status"], r["journal_size"]) == ("backing-off", 1)
    assert r["last_failure"] == "[500 Internal] " + rejected("OneWayCall", 1, "MtLateObj/remember")
    with pytest.raises(pg.StuckError, match="MtLateObj/k1/remember, which Restate rejects"):
        await rt.attach(h.invocation_id)

    rt.register(late_obj)
    assert await rt.attach(h.invocation_id) == "sent"
    await rt.settle()
    assert rt.state("MtLateObj", "k1") == {"x": "y"}


async def test_a_delayed_send_to_a_missing_service_is_rejected_and_its_delay_counts_from_the_retry_that_sends_it() -> None:  # noqa: E501
    rt = make()
    h = await rt.service_send(go_send_later, arg="d")
    await rt.advance(timedelta(seconds=2))
    assert row(rt, h.invocation_id)["last_failure"] == "[500 Internal] " + rejected("OneWayCall", 1, "MtLate/hello")
    assert set(rt.invocations().target_service_name) == {"MtCaller"}

    rt.register(late)
    assert await rt.attach(h.invocation_id) == "sent later"
    sent_at = rt.now
    [child] = rt.invocations().query("target_service_name == 'MtLate'").to_dict("records")
    assert child["status"] == "scheduled"
    assert child["scheduled_start_at"] == sent_at + timedelta(hours=1)  # restate-server measured the same
    assert await rt.attach(child["id"]) == "late hello d"


async def test_a_keyed_call_to_a_missing_object_names_the_object_handler_without_the_key() -> None:
    rt = make()
    h = await rt.service_send(go_obj, arg="z")
    await rt.settle()
    assert row(rt, h.invocation_id)["last_failure"] == "[500 Internal] " + rejected("Call", 1, "MtLateObj/remember")
    rt.register(late_obj)
    assert await rt.attach(h.invocation_id) == '"k1 remembers z"'


async def test_an_unknown_handler_of_a_known_service_works_once_a_revision_adds_it() -> None:
    rt = make()
    h = await rt.service_send(go_unknown_handler, arg="w")
    await rt.settle()
    failure = row(rt, h.invocation_id)["last_failure"]
    assert failure == "[500 Internal] " + rejected("Call", 1, "MtCaller/added_later")
    with pytest.raises(pg.StuckError, match="MtCaller/added_later"):
        await rt.attach(h.invocation_id)

    rt.register(caller_v2())
    assert await rt.attach(h.invocation_id) == '"added later w"'


async def test_the_command_index_counts_what_is_journaled_and_a_stored_run_is_not_repeated() -> None:
    rt = make()
    h = await rt.service_send(go_after_run, arg="v")
    await rt.advance(timedelta(seconds=2))
    r = row(rt, h.invocation_id)
    assert r["last_failure"] == "[500 Internal] " + rejected("Call", 2, "MtLate/hello")  # Input 0, Run 1, Call 2
    assert (r["journal_size"], r["journal_commands_size"]) == (3, 2)
    assert list(rt.journal(h.invocation_id).entry_type) == [
        "Command: Input", "Command: Run", "Notification: Run"]

    rt.register(late)
    assert await rt.attach(h.invocation_id) == '"late hello v" ran'
    assert effects == ["before", "hello v"]


async def test_the_callers_retry_policy_decides_kill_ends_it_with_the_rejection() -> None:
    rt = make()
    with pytest.raises(restate.TerminalError) as ei:
        await rt.service_call(go_then_give_up, arg="x")  # no StuckError: its policy ends it
    assert (ei.value.status_code, ei.value.message) == (500, rejected("Call", 1, "MtNowhere/hello"))
    [r] = rt.invocations().to_dict("records")
    assert r["completion_failure"] == f"[500] {rejected('Call', 1, 'MtNowhere/hello')}"
    assert (r["retry_count"], r["journal_size"]) == (2, 1)


async def test_the_callers_retry_policy_decides_pause_leaves_it_paused() -> None:
    rt = make()
    h = await rt.service_send(go_then_pause, arg="x")
    await rt.advance(timedelta(seconds=1))
    r = row(rt, h.invocation_id)
    assert (r["status"], r["retry_count"]) == ("paused", 2)
    with pytest.raises(pg.StuckError, match="paused after 3 attempts"):
        await rt.attach(h.invocation_id)


async def test_a_key_sent_to_a_service_is_rejected_with_restates_rt0017_text() -> None:
    rt = make()
    h = await rt.service_send(go_keyed_to_service, arg="x")
    await rt.settle()
    r = row(rt, h.invocation_id)
    assert (r["status"], r["journal_size"]) == ("backing-off", 1)
    assert r["last_failure_error_code"] == "RT0017"
    assert r["last_failure"] == (
        "[500 Internal] cannot process command Command: Call (command index 1) because of a failed precondition: "
        "a key was provided, but the callee 'MtCaller' is a Service. Only VirtualObjects or Workflows accept a key")
    with pytest.raises(pg.StuckError, match="the handler code must change"):
        await rt.attach(h.invocation_id)
    rt.kill(h.invocation_id)
    with pytest.raises(restate.TerminalError, match="killed"):
        await rt.attach(h.invocation_id)


async def test_a_caller_rejected_before_a_restart_resumes_from_the_store_once_registered(tmp_path: Path) -> None:
    db = str(tmp_path / "missing.sqlite")

    async def first() -> str:
        rt = make(store=db)
        h = await rt.service_send(go_after_run, arg="s")
        await rt.advance(timedelta(seconds=1))
        assert row(rt, h.invocation_id)["status"] == "backing-off"
        rt.close()
        return h.invocation_id

    async def second(inv_id: str) -> None:
        rt = pg.Runtime(caller, front, late, store=db)
        r = row(rt, inv_id)
        assert (r["status"], r["journal_size"]) == ("backing-off", 3)  # no Call was stored
        assert await rt.attach(inv_id) == '"late hello s" ran'
        assert effects == ["before", "hello s"]  # the stored run was replayed, not repeated
        rt.close()

    inv_id = await first()
    await second(inv_id)
