"""Conformance scenarios A-C (state and virtual objects, call ordering, service-to-service), written once and
run on both engines: the embedded runtime and a real Restate server (see conformance_targets.py)."""

from __future__ import annotations

import asyncio
import json

import conformance_services as S
from conformance_targets import CallFailed, NotReady, fresh, scenario


def _bytes(value: object) -> list[int]:
    return list(json.dumps(value).encode())


# --------------------------------------------------------------------------------------------- A. state
@scenario
async def test_s01_counter_add_returns_old_and_new(t):
    k = fresh()
    assert await t.call("Counter", "add", 1, key=k, idempotency_key=fresh()) == {"oldValue": 0, "newValue": 1}
    assert await t.call("Counter", "add", 2, key=k, idempotency_key=fresh()) == {"oldValue": 1, "newValue": 3}
    assert await t.state("Counter", k) == {"counter": 3}


@scenario
async def test_s02_state_is_per_key_and_clear_all_lists_entries(t):
    m = fresh("m")
    await t.call("MapObject", "set", {"key": "my-key-0", "value": "my-value-0"}, key=m)
    await t.call("MapObject", "set", {"key": "my-key-1", "value": "my-value-1"}, key=m)
    await t.call("MapObject", "set", {"key": "my-key-2", "value": "my-value-2"}, key=m + "1")
    cleared = await t.call("MapObject", "clearAll", key=m)
    assert sorted(cleared, key=lambda e: e["key"]) == [{"key": "my-key-0", "value": "my-value-0"},
                                                        {"key": "my-key-1", "value": "my-value-1"}]
    assert await t.call("MapObject", "get", "my-key-0", key=m) == ""
    assert await t.call("MapObject", "get", "my-key-1", key=m) == ""
    assert await t.call("MapObject", "get", "my-key-2", key=m + "1") == "my-value-2"
    assert await t.state("MapObject", m) == {}
    assert await t.state("MapObject", m + "1") == {"my-key-2": "my-value-2"}


@scenario
async def test_s03_state_written_before_a_terminal_error_is_kept(t):
    k = fresh("my-failure-counter")
    try:
        await t.call("Counter", "addThenFail", 1, key=k)
        raise AssertionError("addThenFail should fail")
    except CallFailed as exc:
        assert (exc.code, exc.message) == (500, k)
    assert await t.call("Counter", "get", key=k) == 1


@scenario
async def test_s04_one_way_adds_through_a_proxy_all_apply(t):
    k = fresh()
    for _ in range(3):
        await t.call("Proxy", "oneWayCall", {"serviceName": "Counter", "virtualObjectKey": k,
                                             "handlerName": "add", "message": _bytes(1)}, idempotency_key=fresh())
    await t.eventually_equal(lambda: t.call("Counter", "get", key=k), 3, "Counter.get after three sends")


def _await_awakeable(name: str) -> dict:
    return {"commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": name}}]}


@scenario
async def test_s05_shared_handler_reads_state_beside_a_running_exclusive_one(t):
    k = fresh()
    sent = await t.send("Interpreter", "interpretCommands", _await_awakeable("a"), key=k)
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=k), "hasAwakeable('a')")
    assert await t.call("Interpreter", "hasAwakeable", "zzz", key=k) is False
    assert await t.status(sent.invocation_id) != "completed"
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "a", "value": "done"}, key=k)
    assert await t.attach(sent.invocation_id) == "done"


@scenario
async def test_s06_exclusive_handlers_on_one_key_run_one_at_a_time(t):
    k = fresh()
    first = await t.send("Interpreter", "interpretCommands", _await_awakeable("a"), key=k)
    second = await t.send("Interpreter", "interpretCommands", {"commands": []}, key=k)
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=k), "hasAwakeable('a')")
    assert await t.status(second.invocation_id) == "pending"  # queued in the key's inbox
    try:
        await t.output(second.invocation_id)
        raise AssertionError("the second invocation should not have run")
    except NotReady:
        pass
    # another key is not blocked
    assert await t.call("Interpreter", "interpretCommands", {"commands": []}, key=k + "x") == ""
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "a", "value": "v"}, key=k)
    assert await t.attach(first.invocation_id) == "v"
    assert await t.attach(second.invocation_id) == ""
    state = await t.state("Interpreter", k)
    assert state["results"] == ["v", ""] and state["awk-a"].startswith("sign_1")


async def _state_survives_a_restart(t, hard: bool) -> None:
    k = fresh()
    assert await t.call("Counter", "add", 1, key=k, idempotency_key=fresh()) == {"oldValue": 0, "newValue": 1}
    await t.restart(hard)
    again = fresh()

    async def add_two() -> object:  # retried with one idempotency key until the engine answers
        try:
            return await t.call("Counter", "add", 2, key=k, idempotency_key=again)
        except (CallFailed, OSError):
            return None

    assert await t.until(add_two, "Counter.add after the restart") == {"oldValue": 1, "newValue": 3}
    assert await t.call("Counter", "add", 2, key=k, idempotency_key=again) == {"oldValue": 1, "newValue": 3}
    assert await t.state("Counter", k) == {"counter": 3}  # the retries with one key applied once


@scenario
async def test_s07_state_survives_a_hard_restart_and_an_idempotent_retry_applies_once(t):
    await _state_survives_a_restart(t, hard=True)


@scenario
async def test_s07_state_survives_a_graceful_restart_and_an_idempotent_retry_applies_once(t):
    await _state_survives_a_restart(t, hard=False)


# --------------------------------------------------------------------------------------------- B. ordering
async def _ordering(t, one_way: list[bool]) -> None:
    lst = fresh("list")
    calls = [{"proxyRequest": {"serviceName": "ListObject", "virtualObjectKey": lst, "handlerName": "append",
                               "message": _bytes(str(i))},
              "oneWayCall": ow, "awaitAtTheEnd": not ow} for i, ow in enumerate(one_way)]
    assert await t.call("Proxy", "manyCalls", calls, idempotency_key=fresh()) is None
    assert await t.call("ListObject", "clear", key=lst) == ["0", "1", "2"]
    assert S.EVENTS[lst] == ["0", "1", "2"]


@scenario
async def test_s08_call_ordering_send_call_call(t):
    await _ordering(t, [True, False, False])


@scenario
async def test_s09_call_ordering_call_send_call(t):
    await _ordering(t, [False, True, False])


@scenario
async def test_s10_call_ordering_send_send_call(t):
    await _ordering(t, [True, True, False])


# --------------------------------------------------------------------------------------------- C. service to service
@scenario
async def test_s11_request_response_through_a_proxy_with_raw_bytes(t):
    req = {"serviceName": "TestUtilsService", "handlerName": "uppercaseEcho", "message": _bytes("ping")}
    assert await t.call("Proxy", "call", req, idempotency_key=fresh()) == _bytes("PING")


@scenario
async def test_s12_one_way_call_returns_the_callee_invocation_id(t):
    k = fresh()
    inv = await t.call("Proxy", "oneWayCall", {"serviceName": "Counter", "virtualObjectKey": k,
                                               "handlerName": "add", "message": _bytes(1)})
    assert isinstance(inv, str) and inv.startswith("inv_1")
    await t.eventually_equal(lambda: t.call("Counter", "get", key=k), 1, "Counter.get")
    assert await t.attach(inv) == {"oldValue": 0, "newValue": 1}
    assert await t.status(inv) == "completed"


@scenario
async def test_s13_one_way_call_with_an_idempotency_key_runs_once(t):
    k, key = fresh(), fresh("idem")
    req = {"serviceName": "Counter", "virtualObjectKey": k, "handlerName": "add", "message": _bytes(1),
           "idempotencyKey": key}
    first = await t.call("Proxy", "oneWayCall", req)
    second = await t.call("Proxy", "oneWayCall", req)
    assert first == second
    await t.eventually_equal(lambda: t.call("Counter", "get", key=k), 1, "Counter.get")
    assert await t.output_idempotent("Counter", "add", k, key) == {"oldValue": 0, "newValue": 1}
    assert S.EVENTS[k] == ["add 1"]


@scenario
async def test_s14_request_response_call_with_an_idempotency_key_is_deduplicated(t):
    k, key = fresh(), fresh("idem")
    req = {"serviceName": "Counter", "virtualObjectKey": k, "handlerName": "add", "message": _bytes(1),
           "idempotencyKey": key}
    for _ in range(2):
        assert json.loads(bytes(await t.call("Proxy", "call", req))) == {"oldValue": 0, "newValue": 1}
    assert await t.call("Counter", "get", key=k) == 1
    assert await t.output_idempotent("Counter", "add", k, key) == {"oldValue": 0, "newValue": 1}


@scenario
async def test_s15_delayed_one_way_calls_fire_after_the_delay_together(t):
    k = fresh()
    delay_ms = int(t.delay.total_seconds() * 1000)
    req = {"serviceName": "Counter", "virtualObjectKey": k, "handlerName": "add", "message": _bytes(1),
           "delayMillis": delay_ms}
    ids = await asyncio.gather(*[t.call("Proxy", "oneWayCall", req, idempotency_key=fresh()) for _ in range(10)])
    assert len(set(ids)) == 10  # each send's id came back at once, before the delay
    assert {await t.status(i) for i in ids} == {"scheduled"}
    await t.wait(t.delay / 3)
    assert await t.call("Counter", "get", key=k) == 0
    await t.wait(t.delay * 2 / 3 + t.slack)
    await t.eventually_equal(lambda: t.call("Counter", "get", key=k), 10, "Counter.get after the delay")


@scenario
async def test_s16_terminal_error_propagates_through_a_call(t):
    try:
        await t.call("Failing", "callTerminallyFailingCall", {"errorMessage": "propagated error"}, key=fresh())
        raise AssertionError("should fail")
    except CallFailed as exc:
        assert (exc.code, exc.message) == (500, "propagated error")


@scenario
async def test_s17_terminal_error_metadata_survives_the_call_hop(t):
    em = {"errorMessage": "propagated error with metadata", "metadata": {"key1": "value1", "key2": "value2"}}
    try:
        await t.call("Failing", "callTerminallyFailingCall", em, key=fresh(), idempotency_key=fresh())
        raise AssertionError("should fail")
    except CallFailed as exc:
        assert (exc.code, exc.message, exc.metadata) == (500, em["errorMessage"], em["metadata"])
    # and as the calling handler sees it
    assert await t.call("Failing", "catchFailingCall", em, key=fresh()) == {
        "code": 500, "message": em["errorMessage"], "metadata": em["metadata"]}
