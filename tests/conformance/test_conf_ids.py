"""Invocation ids, on both engines: Restate's shape (`inv_1` + 33 base62 characters) that parses back into its
partition key and uuid, the very id restate-server derives for a workflow run or an idempotent invocation
(the same keys give the same id on both), awakeable ids that carry the invocation's raw id, and the 400
Restate's ingress answers for text that is not an id."""

from __future__ import annotations

import base64
import json
import re

from playground.runtime import ids

from conformance_targets import CallFailed, fresh, scenario

ID_RE = re.compile(r"inv_1[0-9a-zA-Z]{33}")
SAME = "ids-same-on-both"  # fixed keys: these ids are the same on every run and on both engines


def _round_trips(invocation_id: str) -> ids.InvocationId:
    assert ID_RE.fullmatch(invocation_id), invocation_id
    parsed = ids.parse(invocation_id)
    assert ids.encode(*parsed) == invocation_id
    return parsed


@scenario
async def test_a_workflow_run_gets_the_same_id_on_both_engines(t):
    first = await t.send("SelfPromise", "run", key=SAME)
    assert first.invocation_id == "inv_1hFZNY0Ttip913ZEpE7bPyu6fUHzQKHzWI"
    assert await t.attach(first.invocation_id) == "success"
    again = await t.send("SelfPromise", "run", key=SAME)  # the same run, found by its id
    assert (again.status, again.invocation_id) == ("PreviouslyAccepted", first.invocation_id)
    k = fresh("wf")
    s = await t.send("SelfPromise", "run", key=k)
    assert s.invocation_id == str(ids.derived("SelfPromise", k, "run", None, workflow_run=True))
    assert await t.attach_workflow("SelfPromise", k) == "success"


@scenario
async def test_an_idempotent_invocation_gets_the_same_id_on_both_engines(t):
    svc = await t.send("TestUtilsService", "uppercaseEcho", "x", idempotency_key=SAME)
    assert svc.invocation_id == "inv_1gPALinUkvgd4fSd2g5099xLfqRpDzQCLM"
    obj = await t.send("Counter", "add", 1, key=SAME, idempotency_key=SAME)
    assert obj.invocation_id == "inv_1hFZNY0Ttip96rNZEqzIQzK6wH55QjWX7s"
    # an object's invocations share its partition key: the first 16 characters
    assert obj.invocation_id[:16] == "inv_1hFZNY0Ttip9" == ids.encode(ids.key_partition_key(SAME), 1)[:16]
    req = {"serviceName": "Counter", "virtualObjectKey": "ids-from-a-handler", "handlerName": "add",
           "message": list(b"1"), "idempotencyKey": SAME}
    assert await t.call("Proxy", "oneWayCall", req) == "inv_18zVwLx55XOx51FQUqnlPVx1UVyGQeu5Zy"
    assert await t.attach(svc.invocation_id) == "X"
    k, i = fresh(), fresh("idem")
    s = await t.send("Counter", "add", 1, key=k, idempotency_key=i)
    assert s.invocation_id == str(ids.derived("Counter", k, "add", i, workflow_run=False))
    s = await t.send("TestUtilsService", "uppercaseEcho", "y", idempotency_key=i)
    assert s.invocation_id == str(ids.derived("TestUtilsService", None, "uppercaseEcho", i, workflow_run=False))
    assert await t.attach(s.invocation_id) == "Y"


@scenario
async def test_plain_invocation_ids_have_restates_shape_and_partition_keys(t):
    service_keys = {ids.service_partition_key("TestUtilsService", b) for b in range(ids.BUCKETS)}
    for i in range(3):
        s = await t.send("TestUtilsService", "uppercaseEcho", f"x{i}")
        assert _round_trips(s.invocation_id).partition_key in service_keys  # one of the service's 512 keys
        assert await t.attach(s.invocation_id) == f"X{i}"
    k = fresh()
    s = await t.send("Counter", "add", 1, key=k)
    assert _round_trips(s.invocation_id).partition_key == ids.key_partition_key(k)
    assert await t.attach(s.invocation_id) == {"oldValue": 0, "newValue": 1}
    from_handler = await t.call("Proxy", "oneWayCall", {"serviceName": "Counter", "virtualObjectKey": k,
                                                         "handlerName": "add", "message": list(b"1")})
    assert _round_trips(from_handler).partition_key == ids.key_partition_key(k) and from_handler != s.invocation_id


@scenario
async def test_an_awakeable_id_carries_the_raw_invocation_id(t):
    k = fresh()
    program = {"commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": "a"}}]}
    s = await t.send("Interpreter", "interpretCommands", program, key=k)
    await t.until(lambda: t.call("Interpreter", "hasAwakeable", "a", key=k), "hasAwakeable")
    awakeable_id = (await t.state("Interpreter", k))["awk-a"]
    assert re.fullmatch(r"sign_1[A-Za-z0-9_-]{38}", awakeable_id), awakeable_id
    raw = base64.urlsafe_b64decode(awakeable_id[len("sign_1"):] + "==")
    assert raw[:24] == ids.parse(s.invocation_id).to_bytes()  # partition key and uuid, big-endian
    await t.resolve_awakeable(awakeable_id, "woken")
    assert await t.attach(s.invocation_id) == "woken"


@scenario
async def test_text_that_is_not_an_invocation_id_gets_400_with_restates_reason(t):
    cases = {"inv_nope": "unrecognized codec version", "inv_1hFZNY0Ttip913ZEpE7bPyu6fUHzQKHzW": "bad length",
             "inv_1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz": "base62 decode error"}
    for text, reason in cases.items():
        for read in (t.output, t.attach):
            try:
                await read(text)
            except CallFailed as exc:
                assert (exc.code, exc.message) == (400, f"bad invocation id '{text}': {reason}"), json.dumps(
                    [exc.code, exc.message])
            else:
                raise AssertionError(f"{text!r} should have been refused")
    unknown = ids.encode(ids.key_partition_key(fresh()), 12345)  # well formed, never used
    try:
        await t.output(unknown)
    except CallFailed as exc:
        assert (exc.code, exc.message) == (404, "invocation not found")
    else:
        raise AssertionError("an unknown id should answer 404")
