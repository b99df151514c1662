"""Cancel, kill, pause and resume, as Restate does them (conformance scenarios S61-S67).

Cancel delivers the cancel signal to a started invocation: the SDK raises TerminalError 409 "cancelled" at its
current await and forwards the cancellation to the calls it waits on. An invocation that has not started ends at
once with the server's 409 "canceled" (one l). Kill ends an invocation and the calls it waits on at once with
409 "killed", without running any more handler code; one-way sends are left alone; locks are released. Either
way, one that had not started (scheduled, or queued in an inbox) is then forgotten, as restate-server does.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pandas as pd
import pytest
import restate

import playground as pg

# What handler code did, in order; each test clears it first.
events: list[str] = []

# --------------------------------------------------------------------------------------------- sync helper
holder = restate.VirtualObject("CkHolder")


@holder.handler()
async def hold(ctx: restate.ObjectContext, awakeable_id: str) -> None:
    ctx.set("id", awakeable_id)


@holder.handler()
async def has_awakeable(ctx: restate.ObjectContext) -> bool:
    return await ctx.get("id") is not None


@holder.handler()
async def unlock(ctx: restate.ObjectContext, payload: str) -> None:
    awakeable_id = await ctx.get("id")
    if awakeable_id is None:
        raise restate.TerminalError("No awakeable is registered")
    ctx.resolve_awakeable(awakeable_id, payload)


# --------------------------------------------------------------------------------------------- cancellation
blocking = restate.VirtualObject("CkBlocking")


@blocking.handler()
async def block(ctx: restate.ObjectContext, op: str) -> str:
    events.append(f"block {op}")
    awakeable_id, awakeable = ctx.awakeable(type_hint=str)
    await ctx.object_call(hold, key=ctx.key(), arg=awakeable_id)
    await awakeable
    events.append(f"block {op} blocking")
    if op == "CALL":
        await ctx.object_call(block, key=ctx.key(), arg=op)  # queued behind itself: blocks forever
    elif op == "SLEEP":
        await ctx.sleep(timedelta(days=1024))
    elif op == "AWAKEABLE":
        _never_id, never = ctx.awakeable(type_hint=str)
        await never
    events.append(f"block {op} unblocked")  # never reached: the await above only ends by cancellation
    return "unblocked"


@blocking.handler()
async def is_unlocked(ctx: restate.ObjectContext) -> str:
    return "unlocked"


runner = restate.VirtualObject("CkRunner")


@runner.handler()
async def start_test(ctx: restate.ObjectContext, op: str) -> str:
    events.append("start_test")
    try:
        await ctx.object_call(block, key=ctx.key(), arg=op)
    except restate.TerminalError as e:
        if e.status_code != 409:
            raise
        ctx.set("cancelled", True)
        ctx.set("seen", f"[{e.status_code}] {e.message}")
    events.append("start_test after block")
    return "runner finished"


@runner.handler()
async def verify_test(ctx: restate.ObjectContext) -> bool:
    return await ctx.get("cancelled") or False


utils = restate.Service("CkUtils")


@utils.handler()
async def cancel_invocation(ctx: restate.Context, invocation_id: str) -> None:
    ctx.cancel_invocation(invocation_id)


@utils.handler()
async def send_start_test(ctx: restate.Context, req: dict) -> str:
    handle = ctx.object_send(start_test, key=req["key"], arg=req["op"])
    return await handle.invocation_id()


# --------------------------------------------------------------------------------------------- queued / delayed
gate = restate.VirtualObject("CkGate")


@gate.handler()
async def occupy(ctx: restate.ObjectContext) -> str:
    events.append("occupy")
    await ctx.sleep(timedelta(hours=1))
    events.append("occupy done")
    return "occupied"


@gate.handler()
async def record(ctx: restate.ObjectContext, tag: str) -> str:
    events.append(f"record {tag}")
    return f"recorded {tag}"


plain = restate.Service("CkPlain")


@plain.handler()
async def note(ctx: restate.Context, tag: str) -> str:
    events.append(f"note {tag}")
    return f"noted {tag}"


# --------------------------------------------------------------------------------------------- kill
kill_runner = restate.VirtualObject("CkKillRunner")


@kill_runner.handler()
async def start_call_tree(ctx: restate.ObjectContext) -> str:
    events.append("start_call_tree")
    try:
        await ctx.object_call(recursive_call, key=ctx.key(), arg=None)
    except restate.TerminalError:
        events.append("start_call_tree compensation")  # runs after a cancel, never after a kill
        ctx.set("compensated", True)
        raise
    return "tree done"


singleton = restate.VirtualObject("CkKillSingleton")


@singleton.handler()
async def recursive_call(ctx: restate.ObjectContext) -> str:
    events.append("recursive_call")
    awakeable_id, awakeable = ctx.awakeable(type_hint=str)
    ctx.object_send(hold, key=ctx.key(), arg=awakeable_id)
    await awakeable
    events.append("recursive_call awakened")
    try:
        await ctx.object_call(recursive_call, key=ctx.key(), arg=None)  # queued behind itself
    except restate.TerminalError:
        events.append("recursive_call compensation")  # runs after a cancel, never after a kill
        ctx.set("compensated", True)
        raise
    return "unreachable"


@singleton.handler()
async def singleton_unlocked(ctx: restate.ObjectContext) -> str:
    return "unlocked"


@kill_runner.handler()
async def send_then_block(ctx: restate.ObjectContext) -> str:
    events.append("send_then_block")
    ctx.service_send(slow_note, arg="from killed")
    _id, never = ctx.awakeable(type_hint=str)
    await never
    events.append("send_then_block unblocked")
    return "unreachable"


@plain.handler()
async def slow_note(ctx: restate.Context, tag: str) -> str:
    events.append(f"slow_note {tag} start")
    await ctx.sleep(timedelta(hours=1))
    events.append(f"slow_note {tag} end")
    return f"slow {tag}"


# Keeps the runtime busy (a ctx.run closure executing) until the test opens the gate, so an ingress await
# running as a concurrent task keeps waiting instead of reporting its invocation as stuck.
busy_gate: dict[str, asyncio.Event] = {}


@plain.handler()
async def stay_busy(ctx: restate.Context) -> str:
    async def wait_for_gate() -> str:
        busy_gate["entered"].set()
        await busy_gate["open"].wait()
        return "released"

    return await ctx.run_typed("wait for the test", wait_for_gate)


# --------------------------------------------------------------------------------------------- pause / resume
attempts: dict[str, int] = {}
flaky = restate.Service("CkFlaky")


@flaky.handler()
async def always_raises(ctx: restate.Context) -> None:
    attempts["always_raises"] = attempts.get("always_raises", 0) + 1
    raise RuntimeError(f"broken, attempt {attempts['always_raises']}")


@flaky.handler(invocation_retry_policy=restate.InvocationRetryPolicy(max_attempts=2, on_max_attempts="pause"))
async def pauses_itself(ctx: restate.Context) -> None:
    attempts["pauses_itself"] = attempts.get("pauses_itself", 0) + 1
    raise RuntimeError(f"needs a human, attempt {attempts['pauses_itself']}")


@flaky.handler(invocation_retry_policy=restate.InvocationRetryPolicy(max_attempts=2, on_max_attempts="pause"))
async def run_fails(ctx: restate.Context) -> None:
    attempts["run_fails"] = attempts.get("run_fails", 0) + 1

    def step() -> None:
        attempts["run_fails closure"] = attempts.get("run_fails closure", 0) + 1
        raise RuntimeError("the step is broken")

    await ctx.run_typed("step", step)  # fails the attempt; a pending cancel signal is seen here instead


ALL = (holder, blocking, runner, utils, gate, plain, kill_runner, singleton, flaky)


def make() -> pg.Runtime:
    events.clear()
    attempts.clear()
    return pg.Runtime(*ALL)


def row(rt: pg.Runtime, invocation_id: str) -> dict:
    df = rt.invocations()
    return df[df.id == invocation_id].iloc[0].to_dict()


def rows_of(rt: pg.Runtime, service: str, handler: str) -> list[dict]:
    df = rt.invocations()
    df = df[(df.target_service_name == service) & (df.target_handler_name == handler)]
    return df.sort_values("created_at", kind="stable").to_dict("records")


async def block_runner_on(rt: pg.Runtime, key: str, op: str, started_by: str = "cell") -> str:
    """Start CkRunner(key)/start_test(op) and go through the upstream sync protocol: wait until the blocking
    object registered its awakeable with the holder, unlock it; `block` then sits in its blocking operation."""
    if started_by == "cell":
        runner_id = (await rt.object_send(start_test, key=key, arg=op)).invocation_id
    else:  # a one-way send from a handler, as Cancellation.kt's cancelFromContext does through Proxy
        runner_id = await rt.service_call(send_start_test, arg={"key": key, "op": op})
    await rt.settle()
    assert await rt.object_call(has_awakeable, key=key) is True
    await rt.object_call(unlock, key=key, arg="cancel")
    await rt.settle()
    assert events == ["start_test", f"block {op}", f"block {op} blocking"]
    assert row(rt, runner_id)["status"] == "running"
    return runner_id


# ============================================================================================= S61-S66


@pytest.mark.parametrize("cancel_from", ["cell", "context"])
@pytest.mark.parametrize("op", ["CALL", "SLEEP", "AWAKEABLE"])
async def test_cancel_of_a_blocked_runner_reaches_the_block_the_runner_catches_409_and_every_lock_is_released(
        op: str, cancel_from: str) -> None:
    rt = make()
    k = f"k-{op}"
    runner_id = await block_runner_on(rt, k, op, started_by=cancel_from)
    if cancel_from == "cell":
        rt.cancel(runner_id)
        rt.cancel(runner_id)  # cancelling again is allowed (upstream repeats it until it sticks)
    else:
        await rt.service_call(cancel_invocation, arg=runner_id)
        await rt.service_call(cancel_invocation, arg=runner_id)
    await rt.settle()

    # the runner caught the SDK's TerminalError 409 "cancelled" (two l) and ended normally
    assert await rt.attach(runner_id) == "runner finished"
    assert row(rt, runner_id)["completion_result"] == "success"
    assert await rt.object_call(verify_test, key=k) is True
    assert rt.state("CkRunner", k) == {"cancelled": True, "seen": "[409] cancelled"}

    # every block invocation ended with 409; the one the runner waited on got the signal from the SDK
    blocks = rows_of(rt, "CkBlocking", "block")
    assert all(b["status"] == "completed" for b in blocks)
    assert blocks[0]["invoked_by_id"] == runner_id
    assert blocks[0]["completion_failure"] == "[409] cancelled"
    with pytest.raises(restate.TerminalError) as ei:
        rt.output(blocks[0]["id"])
    assert (ei.value.status_code, ei.value.message) == (409, "cancelled")
    assert len(blocks) == 1
    if op == "CALL":
        # the self-call queued behind `block` never started: the cancel reached it in the inbox, and, as
        # Restate does with an invocation cancelled before it started, the runtime forgot it
        journal = rt.journal(blocks[0]["id"])
        calls = journal[journal.entry_type == "Command: Call"]
        (queued_id,) = calls[calls.invoked_target.str.startswith("CkBlocking/")].invoked_id
        assert "[409] canceled" in list(journal[journal.entry_type == "Notification: Call"].payload)
        assert queued_id not in set(rt.invocations().id)
        with pytest.raises(restate.TerminalError) as ei:
            await rt.attach(queued_id)
        assert ei.value.status_code == 404

    # no handler code after the blocking await ran, and both keys are free for exclusive calls
    assert events == ["start_test", f"block {op}", f"block {op} blocking", "start_test after block"]
    assert await rt.object_call(is_unlocked, key=k) == "unlocked"
    assert all(r["status"] == "completed" for r in rt.invocations().to_dict("records")
               if r["target_service_key"] == k)


# ============================================================================================= not started


async def test_cancelling_an_inboxed_call_ends_it_at_once_with_409_canceled_and_the_queue_moves_on() -> None:
    rt = make()
    await rt.object_send(occupy, key="g")  # holds the key for an hour
    first = await rt.object_send(record, key="g", arg="first")
    second = await rt.object_send(record, key="g", arg="second")
    await rt.settle()
    assert row(rt, first.invocation_id)["status"] == "pending"

    rt.cancel(first.invocation_id)
    # at once, with no settle and no time passing, it is gone, as Restate forgets an invocation cancelled
    # before it started (whoever was waiting for it got 409 "canceled": see test_deadlocks)
    assert first.invocation_id not in set(rt.invocations().id)
    assert list(rt.inbox().id) == [second.invocation_id]
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(first.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (404, "not found")
    assert row(rt, second.invocation_id)["status"] == "pending"

    await rt.advance(timedelta(hours=1))
    assert events == ["occupy", "occupy done", "record second"]  # the cancelled one never ran
    assert await rt.attach(second.invocation_id) == "recorded second"
    assert await rt.object_call(record, key="g", arg="third") == "recorded third"


@pytest.mark.parametrize("keyed", [True, False], ids=["object", "service"])
async def test_cancelling_a_scheduled_delayed_send_ends_it_at_once_and_it_never_runs(keyed: bool) -> None:
    rt = make()
    if keyed:
        h = await rt.object_send(record, key="later", arg="late", send_delay=timedelta(hours=3))
    else:
        h = await rt.service_send(note, arg="late", send_delay=timedelta(hours=3))
    await rt.advance(timedelta(hours=1))
    assert row(rt, h.invocation_id)["status"] == "scheduled"

    rt.cancel(h.invocation_id)
    assert h.invocation_id not in set(rt.invocations().id)  # gone at once: it never started
    with pytest.raises(restate.TerminalError) as ei:
        rt.output(h.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (404, "invocation not found")

    await rt.advance(timedelta(hours=5))  # well past the due time
    assert events == []
    if keyed:
        assert await rt.object_call(record, key="later", arg="now") == "recorded now"
        assert events == ["record now"]


async def test_cancelling_a_completed_invocation_is_a_harmless_no_op() -> None:
    rt = make()
    ok = await rt.object_send(record, key="done", arg="x")
    await rt.settle()
    failed = await rt.object_send(unlock, key="nobody")  # TerminalError: no awakeable is registered
    await rt.settle()
    before = {i: (row(rt, i), len(rt.journal(i))) for i in (ok.invocation_id, failed.invocation_id)}

    rt.cancel(ok.invocation_id)
    rt.cancel(failed.invocation_id)
    await rt.settle()

    assert await rt.attach(ok.invocation_id) == "recorded x"
    with pytest.raises(restate.TerminalError, match="No awakeable is registered"):
        rt.output(failed.invocation_id)
    for i, (r, n) in before.items():
        assert row(rt, i) == r
        assert len(rt.journal(i)) == n
    assert events == ["record x"]


# ============================================================================================= S67 kill


async def build_call_tree(rt: pg.Runtime, key: str) -> str:
    """CkKillRunner(key)/start_call_tree -> CkKillSingleton(key)/recursive_call, which registers an awakeable
    through a one-way send, is unlocked, then calls itself on its own key: queued behind itself."""
    runner_id = (await rt.object_send(start_call_tree, key=key, idempotency_key="tree")).invocation_id
    await rt.settle()
    assert await rt.object_call(has_awakeable, key=key) is True
    await rt.object_call(unlock, key=key, arg="cancel")
    await rt.settle()
    assert events == ["start_call_tree", "recursive_call", "recursive_call awakened"]
    return runner_id


async def test_kill_ends_the_whole_call_tree_with_409_killed_without_running_handler_code() -> None:
    rt = make()
    k = "tree"
    runner_id = await build_call_tree(rt, k)
    calls = rows_of(rt, "CkKillSingleton", "recursive_call")
    assert [c["status"] for c in calls] == ["running", "pending"]
    running, nested = calls[0]["id"], calls[1]["id"]
    [hold_row] = rows_of(rt, "CkHolder", "hold")
    first_awakeable = rt.state("CkHolder", k)["id"]

    rt.kill(runner_id)
    # at once: the runner, the call it waits on and the call queued behind that one
    for i in (runner_id, running, nested):
        assert row(rt, i)["status"] == "completed"
        assert row(rt, i)["completion_result"] == "failure"
        assert row(rt, i)["completion_failure"] == "[409] killed"
    await rt.settle()
    await rt.advance(timedelta(hours=2))

    # no handler code ran after the kill: no compensation, the nested call's code never ran
    assert events == ["start_call_tree", "recursive_call", "recursive_call awakened"]
    assert rt.state("CkKillRunner", k) == {}
    assert rt.state("CkKillSingleton", k) == {}
    assert rt.state("CkHolder", k) == {"id": first_awakeable}  # no second awakeable registered

    # the one-way child (the awakeable registration) was not killed
    assert row(rt, hold_row["id"])["completion_result"] == "success"
    assert row(rt, hold_row["id"])["completion_failure"] is None

    # callers see 409 "killed"; the singleton key is free again
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(runner_id)
    assert (ei.value.status_code, ei.value.message) == (409, "killed")
    with pytest.raises(restate.TerminalError) as ei:
        await rt.object_call(start_call_tree, key=k, idempotency_key="tree")
    assert (ei.value.status_code, ei.value.message) == (409, "killed")
    assert await rt.object_call(singleton_unlocked, key=k) == "unlocked"
    assert events == ["start_call_tree", "recursive_call", "recursive_call awakened"]


async def test_kill_never_starts_the_nested_call_queued_behind_the_killed_singleton() -> None:
    rt = make()
    runner_id = await build_call_tree(rt, "never")
    nested = rows_of(rt, "CkKillSingleton", "recursive_call")[1]["id"]
    assert row(rt, nested)["status"] == "pending"

    rt.kill(runner_id)
    await rt.settle()

    assert row(rt, nested)["completion_failure"] == "[409] killed"
    assert rt.invocation(nested).attempts == 0
    assert pd.isna(row(rt, nested)["running_at"])


async def test_kill_leaves_a_running_one_way_child_alone() -> None:
    rt = make()
    h = await rt.object_send(send_then_block, key="s")
    await rt.settle()
    [child] = rows_of(rt, "CkPlain", "slow_note")
    assert child["invoked_by_id"] == h.invocation_id and child["status"] == "running"

    rt.kill(h.invocation_id)
    await rt.settle()
    assert row(rt, h.invocation_id)["completion_failure"] == "[409] killed"
    assert row(rt, child["id"])["status"] == "running"
    assert row(rt, child["id"])["completion_result"] is None

    await rt.advance(timedelta(hours=1))
    assert await rt.attach(child["id"]) == "slow from killed"
    assert events == ["send_then_block", "slow_note from killed start", "slow_note from killed end"]


async def test_a_concurrent_ingress_caller_waiting_on_a_killed_invocation_gets_409_killed() -> None:
    rt = make()
    k = "waiting"
    runner_id = (await rt.object_send(start_test, key=k, arg="AWAKEABLE", idempotency_key="r")).invocation_id
    await rt.settle()
    await rt.object_call(unlock, key=k, arg="go")
    await rt.settle()
    # keep the runtime busy so the waiting caller below is not reported as stuck before the kill
    busy_gate["entered"], busy_gate["open"] = asyncio.Event(), asyncio.Event()
    await rt.service_send(stay_busy)
    await busy_gate["entered"].wait()

    caller = asyncio.create_task(rt.object_call(start_test, key=k, arg="AWAKEABLE", idempotency_key="r"))
    assert await rt.service_call(note, arg="meanwhile") == "noted meanwhile"  # the caller is waiting now
    assert not caller.done()

    rt.kill(runner_id)
    busy_gate["open"].set()
    with pytest.raises(restate.TerminalError) as ei:
        await caller
    assert (ei.value.status_code, ei.value.message) == (409, "killed")
    await rt.settle()
    [blocked] = rows_of(rt, "CkBlocking", "block")
    assert blocked["completion_failure"] == "[409] killed"
    # unlike a cancel, the runner's `except TerminalError` branch never ran
    assert rt.state("CkRunner", k) == {}
    assert "start_test after block" not in events
    assert await rt.object_call(verify_test, key=k) is False
    assert await rt.object_call(is_unlocked, key=k) == "unlocked"


async def test_kill_of_a_completed_invocation_is_a_no_op() -> None:
    rt = make()
    h = await rt.object_send(record, key="done", arg="x")
    await rt.settle()
    before, n = row(rt, h.invocation_id), len(rt.journal(h.invocation_id))
    rt.kill(h.invocation_id)
    await rt.settle()
    assert await rt.attach(h.invocation_id) == "recorded x"
    assert row(rt, h.invocation_id) == before
    assert len(rt.journal(h.invocation_id)) == n


async def test_kill_of_an_inboxed_invocation_forgets_it_and_it_never_runs() -> None:
    rt = make()
    await rt.object_send(occupy, key="g")
    doomed = await rt.object_send(record, key="g", arg="doomed")
    after = await rt.object_send(record, key="g", arg="after")
    await rt.settle()
    assert row(rt, doomed.invocation_id)["status"] == "pending"

    rt.kill(doomed.invocation_id)
    # at once, as restate-server does: its row is gone, attach and output answer 404
    assert doomed.invocation_id not in set(rt.invocations().id)
    assert list(rt.inbox().id) == [after.invocation_id]
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(doomed.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (404, "not found")
    with pytest.raises(restate.TerminalError) as ei:
        rt.output(doomed.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (404, "invocation not found")
    with pytest.raises(KeyError, match="no invocation"):
        rt.kill(doomed.invocation_id)  # the admin API answers 404 "does not exist" too

    await rt.advance(timedelta(hours=1))
    assert events == ["occupy", "occupy done", "record after"]
    assert await rt.attach(after.invocation_id) == "recorded after"


@pytest.mark.parametrize("keyed", [True, False], ids=["object", "service"])
async def test_kill_of_a_scheduled_delayed_send_forgets_it_and_it_never_runs(keyed: bool) -> None:
    rt = make()
    if keyed:
        h = await rt.object_send(record, key="later", arg="late", send_delay=timedelta(hours=3))
    else:
        h = await rt.service_send(note, arg="late", send_delay=timedelta(hours=3))
    assert row(rt, h.invocation_id)["status"] == "scheduled"

    rt.kill(h.invocation_id)
    assert h.invocation_id not in set(rt.invocations().id)
    with pytest.raises(restate.TerminalError) as ei:
        rt.output(h.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (404, "invocation not found")
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(h.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (404, "not found")

    await rt.advance(timedelta(hours=4))  # well past the due time
    assert events == []
    assert h.invocation_id not in set(rt.invocations().id)


queued_caller = restate.Service("CkQueuedCaller")


@queued_caller.handler()
async def call_record(ctx: restate.Context, key: str) -> str:
    try:
        return await ctx.object_call(record, key=key, arg="from caller")
    except restate.TerminalError as e:
        return f"caught {e.status_code} {e.message}"


@queued_caller.handler()
async def call_record_uncaught(ctx: restate.Context, key: str) -> str:
    return await ctx.object_call(record, key=key, arg="from caller")


@queued_caller.handler()
async def attach_to(ctx: restate.Context, invocation_id: str) -> str:
    try:
        return await ctx.attach_invocation(invocation_id, type_hint=str)
    except restate.TerminalError as e:
        return f"caught {e.status_code} {e.message}"


def make_with_callers() -> pg.Runtime:
    rt = make()
    rt.register(queued_caller)
    return rt


async def test_a_caller_waiting_on_a_killed_queued_call_gets_409_killed_and_the_callee_is_forgotten() -> None:
    rt = make_with_callers()
    await rt.object_send(occupy, key="q")
    caught = await rt.service_send(call_record, arg="q")
    uncaught = await rt.service_send(call_record_uncaught, arg="q")
    await rt.settle()
    callees = rows_of(rt, "CkGate", "record")
    assert [c["status"] for c in callees] == ["pending", "pending"]

    for c in callees:
        rt.kill(c["id"])
    assert not {c["id"] for c in callees} & set(rt.invocations().id)
    # restate-server 1.7.12: the caller's call fails with TerminalError 409 "killed"
    assert await rt.attach(caught.invocation_id) == "caught 409 killed"
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(uncaught.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (409, "killed")

    await rt.advance(timedelta(hours=1))
    assert events == ["occupy", "occupy done"]  # neither queued call ever ran


async def test_a_handler_attached_to_a_killed_delayed_send_gets_409_killed() -> None:
    rt = make_with_callers()
    h = await rt.service_send(note, arg="later", send_delay=timedelta(hours=3))
    attacher = await rt.service_send(attach_to, arg=h.invocation_id)
    await rt.settle()
    assert row(rt, attacher.invocation_id)["status"] in ("running", "suspended")

    rt.kill(h.invocation_id)
    assert await rt.attach(attacher.invocation_id) == "caught 409 killed"
    assert h.invocation_id not in set(rt.invocations().id)


async def test_killing_a_caller_forgets_its_call_queued_behind_someone_else() -> None:
    rt = make_with_callers()
    await rt.object_send(occupy, key="u")
    caller_h = await rt.service_send(call_record_uncaught, arg="u")
    await rt.settle()
    [callee] = rows_of(rt, "CkGate", "record")
    assert callee["status"] == "pending"

    rt.kill(caller_h.invocation_id)
    assert row(rt, caller_h.invocation_id)["completion_failure"] == "[409] killed"
    # the kill reached the callee while it was still in the inbox (the lock is held by `occupy`, which
    # is not killed): forgotten, as restate-server does
    assert callee["id"] not in set(rt.invocations().id)
    await rt.advance(timedelta(hours=1))
    assert events == ["occupy", "occupy done"]


# ============================================================================================= journals


async def test_a_killed_call_tree_gets_no_new_journal_entries() -> None:
    rt = make()
    k = "journal"
    runner_id = await build_call_tree(rt, k)
    ids = [runner_id] + [c["id"] for c in rows_of(rt, "CkKillSingleton", "recursive_call")]
    sizes = {i: len(rt.journal(i)) for i in ids}
    assert sizes[ids[1]] > 1  # the running call journaled its work
    assert sizes[ids[2]] == 1  # the queued one has only its Input

    rt.kill(runner_id)
    await rt.settle()
    await rt.object_call(singleton_unlocked, key=k)  # other work on the freed key
    await rt.advance(timedelta(hours=12))  # within the journal retention

    assert {i: len(rt.journal(i)) for i in ids} == sizes
    assert all(row(rt, i)["journal_size"] == n for i, n in sizes.items())


async def test_a_killed_sleeping_invocation_gets_no_journal_entry_when_its_timer_fires() -> None:
    rt = make()
    h = await rt.object_send(occupy, key="nap")  # sleeps an hour
    await rt.settle()
    kinds = list(rt.journal(h.invocation_id).entry_type)
    assert kinds == ["Command: Input", "Command: Sleep"]

    rt.kill(h.invocation_id)
    await rt.advance(timedelta(hours=2))  # past the wake-up time

    assert list(rt.journal(h.invocation_id).entry_type) == kinds
    assert row(rt, h.invocation_id)["completion_failure"] == "[409] killed"
    assert events == ["occupy"]


async def test_a_cancelled_running_invocation_journals_the_cancel_signal_before_its_output() -> None:
    rt = make()
    k = "signal"
    runner_id = await block_runner_on(rt, k, "AWAKEABLE")
    before = list(rt.journal(runner_id).entry_type)
    assert before == ["Command: Input", "Command: Call", "Notification: CallInvocationId"]

    rt.cancel(runner_id)
    await rt.settle()

    j = rt.journal(runner_id)
    # the cancel signal, the SDK forwarding it to its pending call, the catch block, the output
    assert list(j.entry_type) == before + ["Notification: Signal", "Command: SendSignal", "Command: SetState",
                                           "Command: SetState", "Command: Output"]
    assert j.payload.iloc[-1] == "runner finished"
    [blocked] = rows_of(rt, "CkBlocking", "block")
    bj = list(rt.journal(blocked["id"]).entry_type)
    assert bj[-3:] == ["Notification: Signal", "Command: SendSignal", "Command: Output"]
    assert rt.journal(blocked["id"]).payload.iloc[-1] == "[409] cancelled"


# ============================================================================================= pause / resume


async def test_pause_stops_retries_and_resume_runs_it_again() -> None:
    rt = make()
    h = await rt.service_send(always_raises)
    await rt.settle()
    assert attempts == {"always_raises": 1}
    assert row(rt, h.invocation_id)["status"] == "backing-off"

    rt.pause(h.invocation_id)
    r = row(rt, h.invocation_id)
    assert r["status"] == "paused"
    assert r["retry_count"] == 0
    await rt.advance(timedelta(hours=1))  # the default policy would have retried dozens of times
    assert attempts == {"always_raises": 1}
    assert rt.invocation(h.invocation_id).attempts == 1
    assert row(rt, h.invocation_id)["status"] == "paused"

    rt.resume(h.invocation_id)
    await rt.settle()
    assert attempts == {"always_raises": 2}
    assert rt.invocation(h.invocation_id).attempts == 2
    assert row(rt, h.invocation_id)["last_failure"].startswith("[500 Internal] RuntimeError('broken, attempt 2')\n")
    assert row(rt, h.invocation_id)["status"] == "backing-off"  # back on its retry schedule

    rt.pause(h.invocation_id)
    await rt.advance(timedelta(hours=1))
    assert attempts == {"always_raises": 2}


async def test_a_policy_that_pauses_stops_by_itself_and_resume_gives_one_more_attempt() -> None:
    rt = make()
    h = await rt.service_send(pauses_itself)
    await rt.advance(timedelta(hours=1))
    assert row(rt, h.invocation_id)["status"] == "paused"
    assert attempts == {"pauses_itself": 2}
    await rt.advance(timedelta(hours=1))
    assert attempts == {"pauses_itself": 2}

    rt.resume(h.invocation_id)
    await rt.settle()
    assert attempts == {"pauses_itself": 3}
    assert rt.invocation(h.invocation_id).attempts == 3
    failure = row(rt, h.invocation_id)["last_failure"]
    assert failure.startswith("[500 Internal] RuntimeError('needs a human, attempt 3')\n")


async def test_resume_of_an_invocation_that_is_not_paused_raises_value_error() -> None:
    rt = make()
    done = await rt.object_send(record, key="r", arg="x")
    await rt.settle()
    retrying = await rt.service_send(always_raises)
    await rt.settle()
    waiting = await rt.object_send(occupy, key="busy")
    await rt.settle()
    for h, status in ((done, "completed"), (retrying, "backing-off"), (waiting, "running")):
        assert row(rt, h.invocation_id)["status"] == status
        with pytest.raises(ValueError, match="not paused"):
            rt.resume(h.invocation_id)
        assert row(rt, h.invocation_id)["status"] == status
    assert attempts == {"always_raises": 1}


async def test_cancelling_a_paused_invocation_runs_it_and_it_ends_with_409() -> None:
    rt = make()
    h = await rt.service_send(run_fails)
    await rt.advance(timedelta(hours=1))
    assert row(rt, h.invocation_id)["status"] == "paused"
    assert attempts == {"run_fails": 2, "run_fails closure": 2}

    rt.cancel(h.invocation_id)
    await rt.settle()
    r = row(rt, h.invocation_id)
    assert r["status"] == "completed"
    assert r["completion_failure"] == "[409] cancelled"
    assert attempts == {"run_fails": 3, "run_fails closure": 2}  # ran once more; the closure did not
    with pytest.raises(restate.TerminalError) as ei:
        await rt.attach(h.invocation_id)
    assert (ei.value.status_code, ei.value.message) == (409, "cancelled")
    kinds = list(rt.journal(h.invocation_id).entry_type)
    assert kinds[-2:] == ["Notification: Signal", "Command: Output"]
    assert "Notification: Run" not in kinds  # the step was never journaled as completed
