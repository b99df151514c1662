"""What the V7-only parts of the SDK's API do against restate-server 1.7.12 in its default configuration, and
the embedded runtime doing the same: scopes and limit keys on calls and sends, and the V7 fields of
ctx.request(). A default 1.7 server negotiates protocol V6 (`/version` says `protocol_v7: false`), so the SDK
refuses a scope or a limit key itself (code 573) and the invocation is retried; Start carries no scope,
limit key or idempotency key."""

from __future__ import annotations

import asyncio
import re

import restate

from playground import real

import conformance_services as S
from conformance_targets import CallFailed, Target, fresh, scenario

V6_REFUSES = ("Feature '{}' is not supported by the negotiated protocol version "
              "'application/vnd.restate.invocation.v6', the minimum required version is "
              "'application/vnd.restate.invocation.v7'")


async def _last_failure(t: Target, invocation_id: str) -> tuple[int, str] | None:
    """(code, message) of the invocation's last failed attempt; the server shows it as '[573 Reason] message'."""
    if t.name == "embedded":
        await t.rt.settle()
        err = t.rt.invocation(invocation_id).last_failure
        return (err.code, err.message) if err else None
    rows = await t.query(f"SELECT last_failure FROM sys_invocation WHERE id = '{invocation_id}'")
    m = re.fullmatch(r"\[(\d+) [^\]]*\] (.*)", (rows[0].get("last_failure") or "") if rows else "", re.S)
    return (int(m.group(1)), m.group(2)) if m else None


async def _journal_types(t: Target, invocation_id: str) -> list[str]:
    if t.name == "embedded":
        return list(t.rt.journal(invocation_id).entry_type)
    rows = await t.query(f"SELECT entry_type FROM sys_journal WHERE id = '{invocation_id}' ORDER BY index")
    return [r["entry_type"] for r in rows]


async def _retried_with(t: Target, handler: str, feature: str) -> tuple[str, str]:
    """Send V7Features/<handler> and wait until it has failed twice with the V6 refusal of `feature`."""
    k = fresh()
    sent = await t.send("V7Features", handler, key=k)

    async def refused_twice() -> bool:
        return (await t.status(sent.invocation_id) == "backing-off" and S.ATTEMPTS[k] >= 2
                and await _last_failure(t, sent.invocation_id) == (573, V6_REFUSES.format(feature)))
    await t.until(refused_twice, f"{handler} retried with 573 '{feature}'")
    return k, sent.invocation_id


async def _kill_and_expect_killed(t: Target, invocation_id: str) -> None:
    await t.kill(invocation_id)
    try:
        await t.attach(invocation_id)
        raise AssertionError("a killed invocation should fail")
    except CallFailed as exc:
        assert (exc.code, exc.message) == (409, "killed")


@scenario
async def test_a_scoped_call_is_refused_and_retried_and_nothing_is_called(t):
    k, inv = await _retried_with(t, "scopedCall", "scope")
    # the state set before the refused call is kept, as with any failed attempt; the call itself is not stored
    assert await _journal_types(t, inv) == ["Command: Input", "Command: SetState"]
    assert await t.state("V7Features", k) == {"before": 1}
    await _kill_and_expect_killed(t, inv)


@scenario
async def test_a_scoped_send_is_refused_and_retried_and_nothing_is_sent(t):
    k, inv = await _retried_with(t, "scopedSend", "scope")
    assert await _journal_types(t, inv) == ["Command: Input"]
    assert S.EVENTS[k] == [] and await t.state("Counter", k) == {}
    await _kill_and_expect_killed(t, inv)


@scenario
async def test_a_limit_key_without_a_scope_is_refused_as_a_limit_key(t):
    _k, inv = await _retried_with(t, "limitKeyCall", "limit key")
    assert await _journal_types(t, inv) == ["Command: Input"]
    await _kill_and_expect_killed(t, inv)


@scenario
async def test_a_scoped_call_that_runs_out_of_attempts_fails_with_573(t):
    k = fresh()
    try:
        await t.call("V7Features", "scopedCallThreeTries", key=k)
        raise AssertionError("the scoped call should fail once its three attempts are used up")
    except CallFailed as exc:
        assert (exc.code, exc.message) == (573, V6_REFUSES.format("scope"))
    assert S.ATTEMPTS[k] == 3


@scenario
async def test_request_scope_limit_key_and_idempotency_key_are_none_on_a_default_server(t):
    nothing = {"scope": None, "limitKey": None, "idempotencyKey": None}
    assert await t.call("RequestInfo", "info") == nothing
    assert await t.call("RequestInfo", "info", idempotency_key=fresh()) == nothing  # from the ingress
    assert await t.call("RequestInfo", "callInfo", fresh()) == nothing  # from a handler


async def _ingress(t: Target, verb: str, service: str, handler: str, *, key: str | None = None,
                   scope: str | None = None, limit_key: str | None = None) -> object:
    """A call or send from outside with a scope (the ingress path /restate/scope/<scope>/<verb>/...) and/or a
    limit key (the x-restate-limit-key header), as restate's client sends them; rt.generic_call/send here."""
    if t.name == "embedded":
        fn = t.rt.generic_call if verb == "call" else t.rt.generic_send
        try:
            return await fn(service, handler, b'"x"', key=key, scope=scope, limit_key=limit_key)
        except restate.TerminalError as exc:
            raise CallFailed(exc.status_code, exc.message) from None
    path = real.ingress_path(service, handler, key)
    path = f"/restate/scope/{scope}/{verb}{path}" if scope is not None else path + ("/send" if verb == "send" else "")
    headers = {"content-type": "application/json", **({"x-restate-limit-key": limit_key} if limit_key else {})}
    try:
        return await asyncio.to_thread(real.http_request, "POST", t.server.ingress_url + path, b'"x"', headers)
    except real.IngressError as exc:
        raise CallFailed(exc.code, exc.message) from None


@scenario
async def test_the_ingress_refuses_scopes_and_limit_keys_with_400(t):
    k = fresh()
    cases = [
        ("call", "TestUtilsService", None, "tenant-a", None, "scoped invocations require vqueues to be enabled"),
        ("send", "TestUtilsService", None, "tenant-a", None, "scoped invocations require vqueues to be enabled"),
        ("call", "TestUtilsService", None, "tenant-a", "l1", "scoped invocations require vqueues to be enabled"),
        ("call", "TestUtilsService", None, None, "l1", "limit-key requires a scope to be set"),
        ("send", "TestUtilsService", None, None, "l1", "limit-key requires a scope to be set"),
        ("call", "Counter", k, "tenant-a", None, "scoped invocations require vqueues to be enabled"),
    ]
    for verb, service, key, scope, limit_key, message in cases:
        handler = "add" if service == "Counter" else "uppercaseEcho"
        try:
            await _ingress(t, verb, service, handler, key=key, scope=scope, limit_key=limit_key)
            raise AssertionError(f"{verb} with scope={scope!r} limit_key={limit_key!r} should be refused")
        except CallFailed as exc:
            assert (exc.code, exc.message) == (400, message), (verb, scope, limit_key)
    assert await t.state("Counter", k) == {} and S.EVENTS[k] == []  # nothing ran
