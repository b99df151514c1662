"""More of service communication, written once and run on both engines (see conformance_targets.py): calls
and sends by name, delays (0 included, and cancelled or killed before they fire), one idempotency key from
handlers and the ingress, the shared handler of a locked key, odd keys, 1 MB payloads, a TerminalError with
metadata through two hops, and state on many keys."""

from __future__ import annotations

import asyncio
import json

import conformance_services as S
from conformance_targets import fails, fresh, scenario

MB = 1024 * 1024


def _ms(t) -> int:
    return int(t.delay.total_seconds() * 1000)


def _await_awakeable(name: str) -> dict:
    return {"commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": name}}]}


# --------------------------------------------------------------------------------------------- by name
@scenario
async def test_generic_calls_by_name_reach_an_object_and_a_workflow(t):
    k, w = fresh(), fresh("wf")
    add = {"service": "Counter", "handler": "add", "key": k, "arg": 2}
    assert await t.call("Hops", "genericCall", add) == {"oldValue": 0, "newValue": 2}
    assert await t.call("Hops", "genericCall", {"service": "Counter", "handler": "get", "key": k}) == 2
    run = {"service": "GreetingWf", "handler": "run", "key": w, "arg": "Ann"}
    assert await t.call("Hops", "genericCall", run) == "Hello Ann"
    exc = await fails(t.call("Hops", "genericCall", {**run, "arg": "Bob"}))
    assert (exc.code, exc.message) == (409, "the workflow method was already invoked")
    assert S.EVENTS[w] == ["run Ann"]


@scenario
async def test_a_generic_send_by_name_starts_a_workflow_that_attach_finds_by_its_id(t):
    w = fresh("wf")
    inv = await t.call("Hops", "genericSend", {"service": "GreetingWf", "handler": "run", "key": w, "arg": "Ann"})
    assert isinstance(inv, str) and inv.startswith("inv_1")
    assert await t.attach_workflow("GreetingWf", w) == "Hello Ann"
    assert await t.attach(inv) == "Hello Ann"
    assert await t.output_workflow("GreetingWf", w) == "Hello Ann"


@scenario
async def test_delayed_generic_sends_fire_in_the_order_of_their_delays(t):
    k = fresh()
    later = await t.call("Hops", "genericSend", {"service": "Counter", "handler": "add", "key": k, "arg": 2,
                                                 "delayMillis": 2 * _ms(t)})
    sooner = await t.call("Hops", "genericSend", {"service": "Counter", "handler": "add", "key": k, "arg": 1,
                                                  "delayMillis": _ms(t)})
    assert {await t.status(later), await t.status(sooner)} == {"scheduled"}
    assert await t.attach(later) == {"oldValue": 1, "newValue": 3}
    assert await t.attach(sooner) == {"oldValue": 0, "newValue": 1}
    assert S.EVENTS[k] == ["add 1", "add 2"]


@scenario
async def test_send_delay_zero_runs_at_once_like_a_send_without_delay(t):
    k = fresh()
    before = t.clock()
    inv = await t.call("Hops", "genericSend", {"service": "Counter", "handler": "add", "key": k, "arg": 1,
                                               "delayMillis": 0})
    assert await t.status(inv) != "scheduled"
    assert await t.attach(inv) == {"oldValue": 0, "newValue": 1}
    if t.name != "real":
        assert t.clock() == before  # no timer was involved, so virtual time did not move


# -------------------------------------------------------------------------------------------- idempotency from handlers
@scenario
async def test_one_idempotency_key_from_two_handlers_and_the_ingress_runs_the_callee_once(t):
    k, idem = fresh(), fresh("idem")
    req = {"service": "Counter", "handler": "add", "key": k, "arg": 1, "idempotencyKey": idem}
    first = await t.call("Hops", "genericCall", req)
    second = json.loads(bytes(await t.call("Proxy", "call", {
        "serviceName": "Counter", "virtualObjectKey": k, "handlerName": "add", "message": list(b"1"),
        "idempotencyKey": idem})))
    third = await t.call("Counter", "add", 1, key=k, idempotency_key=idem)
    assert first == second == third == {"oldValue": 0, "newValue": 1}
    sent_from_handler = await t.call("Hops", "genericSend", req)
    sent_from_ingress = await t.send("Counter", "add", 1, key=k, idempotency_key=idem)
    assert (sent_from_ingress.invocation_id, sent_from_ingress.status) == (sent_from_handler, "PreviouslyAccepted")
    assert await t.attach(sent_from_handler) == {"oldValue": 0, "newValue": 1}
    assert await t.call("Counter", "get", key=k) == 1 and S.EVENTS[k] == ["add 1"]


# ------------------------------------------------------------------------------------------ delayed sends stopped early
async def _scheduled_add(t) -> tuple[str, str]:
    k = fresh()
    inv = await t.call("Hops", "genericSend", {"service": "Counter", "handler": "add", "key": k, "arg": 1,
                                               "delayMillis": 2 * _ms(t)})
    assert await t.status(inv) == "scheduled"
    return k, inv


@scenario
async def test_a_delayed_send_cancelled_before_it_fires_never_runs_and_is_forgotten(t):
    k, inv = await _scheduled_add(t)
    await t.cancel(inv)
    await t.wait(2 * t.delay + t.slack)
    assert await t.call("Counter", "get", key=k) == 0 and S.EVENTS[k] == []
    exc = await fails(t.attach(inv))
    assert exc.code == 404
    assert await t.status(inv) is None


async def _killed_before_it_fires(t) -> None:
    k, inv = await _scheduled_add(t)
    await t.kill(inv)
    await t.wait(2 * t.delay + t.slack)
    assert await t.call("Counter", "get", key=k) == 0 and S.EVENTS[k] == []
    exc = await fails(t.attach(inv))
    assert exc.code == 404
    assert await t.status(inv) is None


async def test_a_delayed_send_killed_before_it_fires_never_runs_and_is_forgotten(target):
    await target.run(_killed_before_it_fires)


# --------------------------------------------------------------------------------------------- locked keys
@scenario
async def test_a_handler_calls_the_shared_handler_of_a_locked_key_at_once_while_exclusive_ones_queue(t):
    k = fresh()
    holder = (await t.send("Interpreter", "interpretCommands", _await_awakeable("a"), key=k)).invocation_id
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=k), "the exclusive handler holds the key")
    shared = {"service": "Interpreter", "handler": "hasAwakeable", "key": k, "arg": "a"}
    assert await t.call("Hops", "genericCall", shared) is True
    queued = await t.call("Hops", "genericSend", {"service": "Interpreter", "handler": "interpretCommands", "key": k,
                                                  "arg": {"commands": [{"type": "awaitOne", "command": {
                                                      "type": "runReturns", "value": "queued ran"}}]}})
    assert await t.status(queued) == "pending"
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "a", "value": "v"}, key=k)
    assert await t.attach(holder) == "v"
    assert await t.attach(queued) == "queued ran"


# --------------------------------------------------------------------------------------------- odd keys
@scenario
async def test_an_empty_object_key_is_a_key_like_any_other(t):
    before = await t.call("Counter", "get", key="")
    from_handler = await t.call("Hops", "genericCall", {"service": "Counter", "handler": "add", "key": "", "arg": 1})
    assert from_handler == {"oldValue": before, "newValue": before + 1}
    assert await t.call("Counter", "add", 1, key="") == {"oldValue": before + 1, "newValue": before + 2}
    assert (await t.state("Counter", ""))["counter"] == before + 2


@scenario
async def test_a_unicode_key_with_slash_question_mark_and_hash_is_kept_exactly(t):
    k = "ü/?#é 🙂 " + fresh()
    assert await t.call("Counter", "add", 1, key=k) == {"oldValue": 0, "newValue": 1}
    assert await t.call("Hops", "genericCall", {"service": "Counter", "handler": "add", "key": k, "arg": 1}) == {
        "oldValue": 1, "newValue": 2}
    assert S.EVENTS[k] == ["add 1", "add 1"]  # ctx.key() saw exactly this key both times
    assert await t.state("Counter", k) == {"counter": 2}
    assert await t.call("Counter", "get", key=k.split("/")[0]) == 0  # not a prefix of it


# --------------------------------------------------------------------------------------------- big payloads
@scenario
async def test_a_1_mb_payload_through_the_ingress_and_back(t):
    data = "a" * (MB - 1) + "q"
    out = await t.call("TestUtilsService", "uppercaseEcho", data)
    assert len(out) == MB and out == data.upper()


@scenario
async def test_a_1_mb_payload_between_handlers_and_back(t):
    assert await t.call("Hops", "relayBig", MB) == {"length": MB, "first": "B", "last": "Z", "allB": True}


# --------------------------------------------------------------------------------------------- errors
@scenario
async def test_a_terminal_error_with_metadata_keeps_code_message_and_metadata_through_two_hops(t):
    em = {"message": "deep failure", "code": 418, "metadata": {"a": "1", "b": "two words"}}
    exc = await fails(t.call("Hops", "top", em))  # ingress -> top -> middle -> fail
    assert (exc.code, exc.message, exc.metadata) == (418, "deep failure", {"a": "1", "b": "two words"})
    assert await t.call("Hops", "catchTop", em) == {"code": 418, "message": "deep failure",
                                                    "metadata": {"a": "1", "b": "two words"}}


# --------------------------------------------------------------------------------------------- many keys
@scenario
async def test_state_of_many_keys_stays_apart(t):
    prefix, n = fresh("m"), 25
    await t.call("Hops", "setMany", {"prefix": prefix, "n": n})  # sends from one handler
    await asyncio.gather(*[t.call("MapObject", "set", {"key": "j", "value": f"x{i}"}, key=f"{prefix}-{i}")
                           for i in range(n)])  # and calls from the ingress, concurrently
    for i in range(n):
        await t.eventually_equal(lambda i=i: t.state("MapObject", f"{prefix}-{i}"), {"i": str(i), "j": f"x{i}"},
                                 f"state of key {i}")
    assert await t.state("MapObject", prefix) == {}
    assert await t.call("MapObject", "get", "i", key=f"{prefix}-{n - 1}") == str(n - 1)
