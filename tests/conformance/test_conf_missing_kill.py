"""Issue 12, on both engines: a call or send from a handler to a target that is not registered (yet), and a
kill that reaches an invocation before it started.

restate-server 1.7.12 rejects the Call / OneWayCall without journaling it (journal_size stays), fails the
attempt with error code 500 and "cannot process command Command: Call (command index N) because of a failed
precondition: the service handler S/h was not found" (RT0018) and retries it on the caller's retry policy;
registering the service lets the next retry through. A delayed send or an inboxed invocation that is killed
is forgotten (attach 404 "not found", output 404 "invocation not found"); whoever waited for it gets 409
"killed". The one deliberate difference (an await on such a caller raises StuckError here, waits there) is
differences.DIFFERENCES["stuck"], shown at the end.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import playground as pg

import conformance_services as S
from conformance_targets import fails, fresh, scenario


def rejected(kind: str, index: int, problem: str) -> tuple[int, str]:
    return 500, f"cannot process command Command: {kind} (command index {index}) because of a failed precondition: " \
                f"{problem}"


def not_found(kind: str, handler: str, index: int = 1) -> tuple[int, str]:
    return rejected(kind, index, f"the service handler {handler} was not found")


async def failed_with(t, invocation_id: str, expected: tuple[int, str]) -> None:
    """The invocation's last failed attempt (sys_journal_events can lag a moment behind the status)."""
    await t.eventually_equal(lambda: t.failure(invocation_id), expected, "the last failed attempt")


async def backing_off(t, invocation_id: str, retries: int = 1) -> None:
    """Wait until the invocation has been retried `retries` times and is waiting for the next attempt."""
    async def check() -> bool:
        return (await t.attempts(invocation_id) > retries and await t.status(invocation_id) == "backing-off")
    await t.until(check, f"{invocation_id} backing off after {retries} retries")


# --------------------------------------------------------------------------------------------- missing targets
@scenario
async def test_a_call_to_a_missing_service_is_rejected_unjournaled_and_goes_through_once_registered(t):
    inv = (await t.send("MissingCaller", "callLate", "x")).invocation_id
    await backing_off(t, inv)
    await failed_with(t, inv, not_found("Call", "LateService/hello"))
    assert await t.journal_size(inv) == 1  # only the Input: the Call was not journaled
    await t.register_late(S.late_service)
    assert await t.attach(inv) == "late hello x"
    assert await t.journal_size(inv) == 5  # Input, Call, CallInvocationId, Call result, Output


@scenario
async def test_a_send_to_a_missing_object_is_rejected_the_same_way_and_delivered_once_registered(t):
    k = fresh()
    inv = (await t.send("MissingCaller", "sendLate", k)).invocation_id
    await backing_off(t, inv)
    await failed_with(t, inv, not_found("OneWayCall", "LateSendObject/remember"))
    assert await t.journal_size(inv) == 1
    await t.register_late(S.late_send_object)
    assert await t.attach(inv) == "sent"
    await t.eventually_equal(lambda: t.state("LateSendObject", k), {"x": "sent"}, "the send arrived")


@scenario
async def test_a_keyed_call_to_a_missing_object_names_the_handler_without_the_key(t):
    k = fresh()
    inv = (await t.send("MissingCaller", "callLateObject", k)).invocation_id
    await backing_off(t, inv)
    await failed_with(t, inv, not_found("Call", "LateCallObject/remember"))
    await t.register_late(S.late_call_object)
    assert await t.attach(inv) == f"{k} remembers called"


@scenario
async def test_an_unknown_handler_of_a_known_service_goes_through_once_a_new_revision_has_it(t):
    inv = (await t.send("MissingCaller", "callAddedLater", "w")).invocation_id
    await backing_off(t, inv)
    await failed_with(t, inv, not_found("Call", "Evolving/addedLater"))
    await t.register_late(S.evolving_v2)
    assert await t.attach(inv) == "added later w"
    assert await t.call("Evolving", "old", "still") == "old still"


@scenario
async def test_the_command_index_counts_the_commands_already_journaled(t):
    inv = (await t.send("MissingCaller", "callNowhereAfterRun", "v")).invocation_id
    await backing_off(t, inv)
    await failed_with(t, inv, not_found("Call", "Nowhere/hello", index=2))  # Input 0, Run 1, Call 2
    assert await t.journal_size(inv) == 3  # Input, Run, its result
    await t.kill(inv)
    exc = await fails(t.attach(inv))
    assert (exc.code, exc.message) == (409, "killed")


@scenario
async def test_the_callers_retry_policy_applies_kill_after_three_attempts_ends_it_with_the_rejection(t):
    inv = (await t.send("MissingCaller", "callNowhereGivingUp", "x")).invocation_id
    exc = await fails(t.attach(inv))
    assert (exc.code, exc.message) == not_found("Call", "Nowhere/hello")
    assert await t.status(inv) == "completed"
    assert await t.journal_size(inv) == 1


@scenario
async def test_a_key_sent_to_a_service_is_rejected_unjournaled_too(t):
    inv = (await t.send("MissingCaller", "callServiceWithKey", "x")).invocation_id
    await backing_off(t, inv)
    await failed_with(t, inv, rejected("Call", 1, "a key was provided, but the callee 'Evolving' is a Service. "
                                                  "Only VirtualObjects or Workflows accept a key"))
    assert await t.journal_size(inv) == 1
    await t.kill(inv)


# --------------------------------------------------------------------------------------------- kill before start
async def occupied(t, k: str) -> str:
    """KillGate(k) held by `occupy` until unlock(t, k)."""
    holder = (await t.send("KillGate", "occupy", key=k)).invocation_id
    await t.until(lambda: t.call("AwakeableHolder", "hasAwakeable", key=k), "occupy holds the lock")
    return holder


async def unlock(t, k: str, holder: str) -> None:
    await t.call("AwakeableHolder", "unlock", "done", key=k)
    assert await t.attach(holder) == "done"


async def assert_forgotten(t, invocation_id: str) -> None:
    assert await t.status(invocation_id) is None
    exc = await fails(t.attach(invocation_id))
    assert (exc.code, exc.message) == (404, "not found")
    exc = await fails(t.output(invocation_id))
    assert (exc.code, exc.message) == (404, "invocation not found")


async def _two(ids_aw) -> list[str] | None:
    ids = await ids_aw
    return ids if len(ids) == 2 else None


@scenario
async def test_a_delayed_send_killed_before_it_fires_is_forgotten_and_never_runs(t):
    k = fresh()
    delay = timedelta(seconds=2)
    inv = (await t.send("KillGate", "record", "late", key=k, delay=delay)).invocation_id
    assert await t.status(inv) == "scheduled"
    await t.kill(inv)
    await assert_forgotten(t, inv)
    await t.wait(delay + t.slack)
    assert S.EVENTS[k] == []
    assert await t.call("KillGate", "record", "now", key=k) == "recorded now"


@scenario
async def test_an_invocation_killed_in_a_keys_inbox_is_forgotten_and_never_runs(t):
    k = fresh()
    holder = await occupied(t, k)
    doomed = (await t.send("KillGate", "record", "doomed", key=k)).invocation_id
    after = (await t.send("KillGate", "record", "after", key=k)).invocation_id
    await t.eventually_equal(lambda: t.status(doomed), "pending", "queued behind occupy")
    await t.kill(doomed)
    await assert_forgotten(t, doomed)
    await unlock(t, k, holder)
    assert await t.attach(after) == "recorded after"
    assert S.EVENTS[k] == ["record after"]


@scenario
async def test_a_caller_waiting_on_a_killed_queued_call_gets_409_killed(t):
    k = fresh()
    holder = await occupied(t, k)
    caught = (await t.send("KillCaller", "callRecord", k)).invocation_id
    uncaught = (await t.send("KillCaller", "callRecordUncaught", k)).invocation_id
    callees = await t.until(lambda: _two(t.ids_of("KillGate", "record", k)), "both calls queued")
    for callee in callees:
        assert await t.status(callee) == "pending"
        await t.kill(callee)
    assert await t.attach(caught) == "caught 409 killed"
    exc = await fails(t.attach(uncaught))
    assert (exc.code, exc.message) == (409, "killed")
    for callee in callees:
        await assert_forgotten(t, callee)
    await unlock(t, k, holder)
    assert S.EVENTS[k] == []


@scenario
async def test_a_handler_attached_to_a_killed_delayed_send_gets_409_killed(t):
    k = fresh()
    sent = (await t.send("KillGate", "record", "late", key=k, delay=timedelta(seconds=2))).invocation_id
    attacher = (await t.send("KillCaller", "attachTo", sent)).invocation_id
    await t.eventually_equal(lambda: t.journal_size(attacher), 2, "the attach journaled (Input, AttachInvocation)")
    await t.kill(sent)
    assert await t.attach(attacher) == "caught 409 killed"
    await assert_forgotten(t, sent)


@scenario
async def test_killing_a_caller_forgets_its_call_queued_behind_another_holder(t):
    k = fresh()
    holder = await occupied(t, k)
    caller = (await t.send("KillCaller", "callRecordUncaught", k)).invocation_id
    [callee] = await t.until(lambda: t.ids_of("KillGate", "record", k), "the call queued")
    await t.kill(caller)
    exc = await fails(t.attach(caller))
    assert (exc.code, exc.message) == (409, "killed")
    await t.eventually_equal(lambda: t.status(callee), None, "the queued callee forgotten")
    await unlock(t, k, holder)
    assert S.EVENTS[k] == []


@scenario
async def test_killing_a_deadlocks_root_keeps_its_queued_member(t):
    # Unlike the cases above, the queued member waits for the lock the killed root holds: restate-server
    # starts it on the freed lock before the kill reaches it, so it is kept, not forgotten. The embedded
    # runtime kills it before it runs (409 "killed"); on the real server it is killed too, or, if its handler
    # is quick enough (here it returns at once), completes first: a race.
    k = fresh()
    root = (await t.send("CycA", "hop", 2, key=k)).invocation_id
    [_root, queued] = await t.until(lambda: _two(t.ids_of("CycA", "hop", k)), "the second A queued")
    await t.eventually_equal(lambda: t.status(queued), "pending", "the second A queued behind the root")
    await t.kill(root)
    exc = await fails(t.attach(root))
    assert (exc.code, exc.message) == (409, "killed")
    await t.eventually_equal(lambda: t.status(queued), "completed", "the queued member ended and was kept")
    if t.name != "real":
        exc = await fails(t.attach(queued))
        assert (exc.code, exc.message) == (409, "killed")


# --------------------------------------------------------------------------------------------- the difference
@scenario
async def test_an_await_on_a_caller_of_a_missing_handler_raises_here_and_waits_there(t):
    """differences.DIFFERENCES["stuck"]: the embedded runtime raises StuckError naming the missing handler and
    the fix; the real server keeps the request open and retries. Registering the service ends both alike."""
    inv = (await t.send("MissingCaller", "callLateWaited", "x")).invocation_id
    await backing_off(t, inv)
    if t.name != "real":
        with pytest.raises(pg.StuckError) as err:
            await t.attach(inv)
        assert "calls LateWaited/hello, which Restate rejects" in str(err.value)
        assert "rt.register(...)" in str(err.value)
        await t.register_late(S.late_waited)
        assert await t.attach(inv) == "waited hello x"
    else:
        waiting = asyncio.ensure_future(t.attach(inv))
        await asyncio.sleep(t.delay.total_seconds())
        assert not waiting.done(), "the attach should still be waiting on the real server"
        await t.register_late(S.late_waited)
        assert await waiting == "waited hello x"
