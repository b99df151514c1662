"""Conformance scenarios H-M (workflows, ingress idempotency and attach, cancellation, kill, ingress
features and errors), written once and run on both engines (see conformance_targets.py)."""

from __future__ import annotations

import asyncio
import json
import os

import conformance_services as S
from conformance_targets import NotReady, fails, fresh, scenario


async def _not_ready(aw) -> None:
    try:
        await aw
    except NotReady:
        return
    raise AssertionError("expected the response not to be ready")


# --------------------------------------------------------------------------------------------- H. workflows
@scenario
async def test_s51_workflow_runs_once_with_a_promise_attach_output_and_resubmission(t):
    w = fresh("wf")
    s1 = await t.send("BlockAndWaitWorkflow", "run", "Francesco", key=w)
    assert s1.status == "Accepted"
    await t.eventually_equal(lambda: t.call("BlockAndWaitWorkflow", "getState", key=w), "Francesco", "getState")
    await _not_ready(t.output_workflow("BlockAndWaitWorkflow", w))
    await t.call("BlockAndWaitWorkflow", "unblock", "Till", key=w, idempotency_key=fresh())
    assert await t.attach_workflow("BlockAndWaitWorkflow", w) == "Till"
    assert await t.output_workflow("BlockAndWaitWorkflow", w) == "Till"
    s2 = await t.send("BlockAndWaitWorkflow", "run", "Francesco", key=w)
    assert (s2.status, s2.invocation_id) == ("PreviouslyAccepted", s1.invocation_id)
    exc = await fails(t.call("BlockAndWaitWorkflow", "run", "Francesco", key=w))
    assert (exc.code, exc.message) == (409, "the workflow method was already invoked")
    assert await t.output_workflow("BlockAndWaitWorkflow", w) == "Till"
    assert S.EVENTS[w] == ["run Francesco"]
    assert await t.state("BlockAndWaitWorkflow", w) == {"my-state": "Francesco"}


@scenario
async def test_s52_workflow_promise_resolved_concurrently_with_the_run(t):
    r = fresh("pay")
    paid, _ = await asyncio.gather(t.call("Payment", "pay", 10, key=r),
                                   t.call("Payment", "paymentVerified", "Done", key=r))
    assert paid == "Verified Done!"
    # resolved before the run even started
    r2 = fresh("pay")
    await t.call("Payment", "paymentVerified", "Early", key=r2)
    assert await t.call("Payment", "pay", 10, key=r2) == "Verified Early!"


@scenario
async def test_s53_workflow_resolves_and_reads_its_own_promise(t):
    assert await t.call("SelfPromise", "run", key=fresh("test-key")) == "success"


@scenario
async def test_workflow_output_and_attach_of_a_never_run_id(t):
    w = fresh("never")
    exc = await fails(t.output_workflow("BlockAndWaitWorkflow", w))
    assert exc.code == 404
    assert await t.call("BlockAndWaitWorkflow", "getState", key=w) == ""  # shared handlers work on any id


# --------------------------------------------------------------------------------------------- I. idempotency, attach
@scenario
async def test_s54_same_idempotency_key_returns_the_cached_response(t):
    k, key = fresh(), fresh("idem")
    for _ in range(2):
        assert await t.call("Counter", "add", 2, key=k, idempotency_key=key) == {"oldValue": 0, "newValue": 2}
    assert await t.call("Counter", "add", 99, key=k, idempotency_key=key) == {"oldValue": 0, "newValue": 2}
    assert await t.call("Counter", "get", key=k) == 2
    assert S.EVENTS[k] == ["add 2"]


@scenario
async def test_s55_ingress_idempotency_key_on_a_service_runs_its_side_effect_once(t):
    k, key = fresh(), fresh("idem")
    req = {"serviceName": "Counter", "virtualObjectKey": k, "handlerName": "add", "message": [50]}
    ids = [await t.call("Proxy", "oneWayCall", req, idempotency_key=key) for _ in range(2)]
    assert ids[0] == ids[1]
    await t.eventually_equal(lambda: t.call("Counter", "get", key=k), 2, "Counter.get")
    assert await t.call("Counter", "add", 2, key=k, idempotency_key=fresh()) == {"oldValue": 2, "newValue": 4}


@scenario
async def test_s56_idempotent_send_accepted_then_previously_accepted(t):
    k, key = fresh(), fresh("idem")
    s1 = await t.send("Counter", "add", 2, key=k, idempotency_key=key)
    s2 = await t.send("Counter", "add", 2, key=k, idempotency_key=key)
    assert (s1.status, s2.status) == ("Accepted", "PreviouslyAccepted")
    assert s1.invocation_id == s2.invocation_id and s1.invocation_id.startswith("inv_1")
    await t.eventually_equal(lambda: t.call("Counter", "get", key=k), 2, "Counter.get")
    assert await t.call("Counter", "add", 2, key=k) == {"oldValue": 2, "newValue": 4}


@scenario
async def test_s57_idempotent_send_then_attach_and_output_by_idempotency_key(t):
    i, key = fresh(), fresh("idem")
    program = {"commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": "a"}}]}
    s = await t.send("Interpreter", "interpretCommands", program, key=i, idempotency_key=key)
    assert s.status == "Accepted"
    await _not_ready(t.output_idempotent("Interpreter", "interpretCommands", i, key))
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=i), "hasAwakeable")
    await _not_ready(t.output_idempotent("Interpreter", "interpretCommands", i, key))
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "a", "value": "response"}, key=i,
                 idempotency_key=fresh())
    assert await t.attach_idempotent("Interpreter", "interpretCommands", i, key) == "response"
    assert await t.output_idempotent("Interpreter", "interpretCommands", i, key) == "response"


@scenario
async def test_s58_attach_by_invocation_id_to_a_sent_invocation(t):
    ms = int(t.delay.total_seconds() * 1000)
    program = {"commands": [{"type": "awaitOne", "command": {"type": "sleep", "timeoutMillis": ms}}]}
    s = await t.send("Interpreter", "interpretCommands", program, key=fresh())  # no idempotency key
    assert await t.attach(s.invocation_id) == "sleep"
    assert await t.output(s.invocation_id) == "sleep"


@scenario
async def test_s59_idempotency_key_on_a_counter_increment(t):
    r = fresh()
    for _ in range(2):
        await t.call("Counter", "add", 1, key=r, idempotency_key=r)
    assert await t.call("Counter", "get", key=r) == 1


@scenario
async def test_s60_send_returns_an_invocation_id(t):
    s = await t.send("TestUtilsService", "uppercaseEcho", "Pippo")
    assert s.status == "Accepted" and s.invocation_id.startswith("inv_1")
    assert await t.attach(s.invocation_id) == "PIPPO"


# --------------------------------------------------------------------------------------------- J. cancellation
async def _blocked_runner(t, op: str, via_proxy: bool) -> tuple[str, str]:
    k = fresh()
    if via_proxy:
        inv = await t.call("Proxy", "oneWayCall", {"serviceName": "CancelTestRunner", "virtualObjectKey": k,
                                                   "handlerName": "startTest",
                                                   "message": list(json.dumps(op).encode())})
    else:
        inv = (await t.send("CancelTestRunner", "startTest", op, key=k, idempotency_key=fresh())).invocation_id
    await t.until(lambda: t.call("AwakeableHolder", "hasAwakeable", key=k), "the blocking service holds an awakeable")
    await t.call("AwakeableHolder", "unlock", "cancel", key=k)
    await t.until(lambda: asyncio.sleep(0, f"blocking on {op}" in S.EVENTS[k]), f"blocking on {op}")
    return k, inv


async def _cancel_scenario(t, op: str, from_context: bool) -> None:
    k, inv = await _blocked_runner(t, op, via_proxy=from_context)
    for _ in range(2):  # a repeated cancel is tolerated
        if from_context:
            await t.call("TestUtilsService", "cancelInvocation", inv, idempotency_key=fresh())
        else:
            await t.cancel(inv)
    assert await t.call("CancelTestRunner", "verifyTest", key=k) is True
    assert await t.call("CancelTestBlockingService", "isUnlocked", key=k) is None
    assert await t.attach(inv) is None  # startTest caught the 409 and completed normally
    assert S.EVENTS[k] == [f"blocking on {op}", "runner saw 409 cancelled"]


@scenario
async def test_s61_cancel_from_the_admin_api_while_blocked_on_a_call(t):
    await _cancel_scenario(t, "CALL", from_context=False)


@scenario
async def test_s62_cancel_from_the_admin_api_while_blocked_on_a_sleep(t):
    await _cancel_scenario(t, "SLEEP", from_context=False)


@scenario
async def test_s63_cancel_from_the_admin_api_while_blocked_on_an_awakeable(t):
    await _cancel_scenario(t, "AWAKEABLE", from_context=False)


@scenario
async def test_s64_cancel_from_a_handler_while_blocked_on_a_call(t):
    await _cancel_scenario(t, "CALL", from_context=True)


@scenario
async def test_s65_cancel_from_a_handler_while_blocked_on_a_sleep(t):
    await _cancel_scenario(t, "SLEEP", from_context=True)


@scenario
async def test_s66_cancel_from_a_handler_while_blocked_on_an_awakeable(t):
    await _cancel_scenario(t, "AWAKEABLE", from_context=True)


async def _queued_behind_an_awakeable(t):
    k = fresh()
    program = {"commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": "a"}}]}
    first = await t.send("Interpreter", "interpretCommands", program, key=k)
    queued = await t.send("Interpreter", "interpretCommands", {"commands": [{"type": "awaitOne", "command": {
        "type": "runReturns", "value": "queued ran"}}]}, key=k, idempotency_key=fresh())
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=k), "hasAwakeable")
    assert await t.status(queued.invocation_id) == "pending"
    return k, first.invocation_id, queued.invocation_id


@scenario
async def test_cancel_of_a_pending_invocation_means_it_never_runs(t):
    k, first, queued = await _queued_behind_an_awakeable(t)
    await t.cancel(queued)
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "a", "value": "v"}, key=k)
    assert await t.attach(first) == "v"
    assert await t.call("Interpreter", "getResults", key=k) == ["v"]
    assert S.EVENTS[k] == ["v"]
    await t.cancel(first)  # completed: nothing to do


@scenario
async def test_cancel_of_a_started_invocation_fails_it_with_cancelled(t):
    k, first, queued = await _queued_behind_an_awakeable(t)
    await t.cancel(first)
    exc = await fails(t.attach(first))
    assert (exc.code, exc.message) == (409, "cancelled")  # the SDK's spelling: raised at its await
    assert await t.attach(queued) == "queued ran"  # the lock passed on to the queued one
    assert S.EVENTS[k] == ["queued ran"]


@scenario
async def test_attach_to_a_pending_invocation_that_was_cancelled(t):
    _k, first, queued = await _queued_behind_an_awakeable(t)
    await t.cancel(queued)

    try:
        exc = await fails(t.attach(queued))
        assert exc.code == 404  # the server forgets an invocation cancelled before it started
    finally:
        await t.cancel(first)


# --------------------------------------------------------------------------------------------- K. kill
@scenario
async def test_s67_kill_a_call_tree_without_running_handler_code(t):
    k = fresh()
    inv = (await t.send("KillTestRunner", "startCallTree", key=k)).invocation_id
    await t.until(lambda: t.call("AwakeableHolder", "hasAwakeable", key=k), "recursiveCall holds an awakeable")
    first_awakeable = (await t.state("AwakeableHolder", k))["id"]
    await t.call("AwakeableHolder", "unlock", "kill", key=k)
    await t.wait(t.delay)  # recursiveCall now calls itself on its own key: queued behind itself
    await t.kill(inv)
    exc = await fails(t.attach(inv))
    assert (exc.code, exc.message) == (409, "killed")
    assert await t.call("KillTestSingleton", "isUnlocked", key=k) is None
    # The queued nested call: the embedded runtime kills it with its caller, before it can start; the real
    # server kills the running one first, and the nested one may briefly start on the freed lock before its
    # own kill arrives (then it is killed too: the key ends unlocked, as isUnlocked shows above).
    assert S.EVENTS[k][0] == "recursiveCall started" and len(S.EVENTS[k]) <= 2
    assert first_awakeable.startswith("sign_1")


# --------------------------------------------------------------------------------------------- M. ingress features
@scenario
async def test_s72_ingress_headers_reach_the_handler(t):
    got = await t.call("TestUtilsService", "echoHeaders", headers={"x-my-custom-header": "x-my-custom-value"},
                       idempotency_key=fresh())
    assert got["x-my-custom-header"] == "x-my-custom-value"


@scenario
async def test_s73_raw_bytes_in_raw_bytes_out(t):
    data = os.urandom(100)
    assert await t.call("TestUtilsService", "rawEcho", raw=data) == data


@scenario
async def test_s74_ingress_private_handler(t):
    assert await t.call("ProxyGreeter", "greet", "Francesco") == "Hello Francesco"
    exc = await fails(t.call("PrivateGreeter", "greet", "Francesco"))
    assert (exc.code, exc.message) == (400, "the invoked service is not public")


@scenario
async def test_s75_service_to_service_call_with_headers(t):
    assert await t.call("TestUtilsService", "callWithHeaders", {"x-a": "b"}) == {"x-a": "b"}


@scenario
async def test_ingress_errors_for_unknown_targets(t):
    exc = await fails(t.call("NoSuch", "x", 1))
    assert (exc.code, exc.message) == (404, "service 'NoSuch' not found, make sure to register the service "
                                            "before calling it.")
    exc = await fails(t.call("Counter", "nosuch", 1, key="a"))
    assert (exc.code, exc.message) == (404, "the service 'Counter' exists, but the handler 'nosuch' was not found, "
                                            "check that the handler exists in the latest registered service version.")
