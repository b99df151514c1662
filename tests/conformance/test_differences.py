"""The deliberate differences (differences.DIFFERENCES), each shown on both engines: what the embedded runtime
does, what the real server does, and that they agree on what happens around it."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

import playground as pg
from playground import real

import differences
from conformance_targets import CallFailed, fresh, scenario


def test_every_difference_has_a_reason():
    assert set(differences.DIFFERENCES) == {"deadlock", "stuck", "time", "cancel_completed",
                                            "object_without_key",
                                            "clock_range"}
    assert all(len(reason) > 80 for reason in differences.DIFFERENCES.values())


async def _still_waiting(t, aw, what: str) -> asyncio.Task:
    """Start `aw` in the background; on the real server it must still be waiting after t.delay."""
    task = asyncio.ensure_future(aw)
    await asyncio.sleep(t.delay.total_seconds())
    assert not task.done(), f"{what} should still be waiting on the real server"
    return task


@scenario
async def test_deadlock_raises_here_and_hangs_there(t):
    k = fresh()
    root = await t.send("CycA", "hop", 2, key=k)  # A(k) -> B(k) -> A(k): the second A queues behind the first
    if t.name != "real":  # the embedded runtime, also through its HTTP door
        with pytest.raises(pg.DeadlockError, match="deadlock"):
            await t.attach(root.invocation_id)
        waiting = None
    else:
        waiting = await _still_waiting(t, t.attach(root.invocation_id), "an attach to a deadlocked invocation")
    await t.cancel(root.invocation_id)  # breaking it ends the same way on both
    try:
        await (waiting if waiting is not None else t.attach(root.invocation_id))
        raise AssertionError("the cancelled root should fail")
    except CallFailed as exc:
        assert (exc.code, exc.message) == (409, "cancelled")


@scenario
async def test_an_await_nothing_can_complete_raises_here_and_waits_there(t):
    k = fresh()
    program = {"commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": "a"}}]}
    sent = await t.send("Interpreter", "interpretCommands", program, key=k)
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=k), "hasAwakeable")
    if t.name != "real":  # the embedded runtime, also through its HTTP door
        with pytest.raises(pg.StuckError, match="awakeable"):
            await t.attach(sent.invocation_id)
        waiting = None
    else:
        waiting = await _still_waiting(t, t.attach(sent.invocation_id), "an attach to a blocked invocation")
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "a", "value": "late"}, key=k)
    assert await (waiting if waiting is not None else t.attach(sent.invocation_id)) == "late"


@scenario
async def test_an_hour_of_delay_is_virtual_here_and_real_there(t):
    k = fresh()
    sent = await t.send("Counter", "add", 1, key=k, delay=timedelta(hours=1))
    assert await t.status(sent.invocation_id) == "scheduled"
    if t.name != "real":
        before, wall = t.rt.now, time.monotonic()
        await t.wait(timedelta(hours=1))
        assert t.rt.now - before == timedelta(hours=1) and time.monotonic() - wall < 5
        assert await t.call("Counter", "get", key=k) == 1
    else:
        async def scheduled_row():
            rows = await t.query(f"SELECT * FROM sys_invocation "
                                 f"WHERE id = '{sent.invocation_id}'")
            return rows and rows[0].get("scheduled_start_at") and rows[0]
        row = await t.until(scheduled_row, "scheduled_start_at in sys_invocation")
        assert row["scheduled_start_at"] > row["created_at"]
        assert await t.call("Counter", "get", key=k) == 0
        await t.cancel(sent.invocation_id)  # don't leave it scheduled on the session's server


@scenario
async def test_a_blocked_invocation_shows_running_on_both(t):
    k = fresh()
    program = {"commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": "a"}}]}
    sent = await t.send("Interpreter", "interpretCommands", program, key=k)
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=k), "hasAwakeable")
    assert await t.status(sent.invocation_id) == "running"
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "a", "value": "v"}, key=k)
    assert await t.attach(sent.invocation_id) == "v"
    assert await t.status(sent.invocation_id) == "completed"


@scenario
async def test_cancel_of_a_completed_invocation(t):
    sent = await t.send("TestUtilsService", "uppercaseEcho", "x")
    assert await t.attach(sent.invocation_id) == "X"
    if t.name == "embedded":
        t.rt.cancel(sent.invocation_id)  # quietly left alone
        t.rt.kill(sent.invocation_id)
    else:
        for op in ("cancel", "kill"):
            with pytest.raises(real.IngressError) as err:
                await asyncio.to_thread(real.http_request, "PATCH", f"{t.server.admin_url}/invocations/"
                                        f"{sent.invocation_id}/{op}")
            assert err.value.status == 409 and "already completed" in err.value.body.decode()
    assert await t.attach(sent.invocation_id) == "X"


BAD_PATH = "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler"


@scenario
async def test_an_object_call_without_a_key_names_the_missing_key_here(t):
    k = fresh()
    for call in (t.call("Counter", "add", 1), t.call("GreetingWf", "run", "x")):  # an object and a workflow
        try:
            await call
            raise AssertionError("a keyed handler without a key should be refused")
        except CallFailed as exc:
            expected = BAD_PATH + (" (a key is required)" if t.name == "embedded" else "")
            assert (exc.code, exc.message) == (400, expected)
    assert await t.call("Counter", "get", key=k) == 0  # nothing ran; the same call with a key works
    assert await t.call("Counter", "add", 1, key=k) == {"oldValue": 0, "newValue": 1}
