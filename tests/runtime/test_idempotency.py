"""Idempotency keys on ingress and on ctx calls/sends; dedup within one execution across retries."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import restate

import playground as pg

executions: list[str] = []

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> dict:
    executions.append(f"add {ctx.key()} {n}")
    old = await ctx.get("count") or 0
    ctx.set("count", old + n)
    return {"old": old, "new": old + n}


@counter.handler()
async def add_slowly(ctx: restate.ObjectContext, n: int) -> int:
    executions.append(f"slow {n}")
    await ctx.sleep(timedelta(seconds=2))
    return n


@counter.handler()
async def other(ctx: restate.ObjectContext, n: int) -> int:
    executions.append(f"other {n}")
    return n


retained = restate.VirtualObject("Retained", idempotency_retention=timedelta(seconds=5))


@retained.handler()
async def bump(ctx: restate.ObjectContext) -> int:
    n = (await ctx.get("n") or 0) + 1
    ctx.set("n", n)
    return n


proxy = restate.Service("Proxy")


@proxy.handler()
async def call_with_key(ctx: restate.Context, req: dict) -> dict:
    return await ctx.object_call(add, key=req["key"], arg=req["n"], idempotency_key=req["idem"])


@proxy.handler()
async def send_with_key(ctx: restate.Context, req: dict) -> str:
    return await ctx.object_send(add, key=req["key"], arg=req["n"], idempotency_key=req["idem"]).invocation_id()


attempts: list[int] = []


@proxy.handler()
async def call_then_fail_once(ctx: restate.Context, key: str) -> dict:
    result = await ctx.object_call(add, key=key, arg=1)
    attempts.append(1)
    if len(attempts) == 1:
        raise RuntimeError("transient failure after the call")
    return result


def make() -> pg.Runtime:
    executions.clear()
    attempts.clear()
    return pg.Runtime(counter, retained, proxy)


async def test_a_duplicate_returns_the_first_result_even_with_a_different_body() -> None:
    rt = make()
    first = await rt.object_call(add, key="a", arg=2, idempotency_key="K")
    second = await rt.object_call(add, key="a", arg=100, idempotency_key="K")
    assert first == second == {"old": 0, "new": 2}
    assert executions == ["add a 2"]
    assert rt.state("Counter", "a") == {"count": 2}
    assert len(rt.invocations()) == 1


async def test_keys_are_scoped_per_handler_and_object_key() -> None:
    rt = make()
    await rt.object_call(add, key="a", arg=1, idempotency_key="K")
    await rt.object_call(add, key="b", arg=1, idempotency_key="K")
    await rt.object_call(other, key="a", arg=1, idempotency_key="K")
    assert executions == ["add a 1", "add b 1", "other 1"]


async def test_idempotent_send_is_accepted_then_previously_accepted_with_the_same_id() -> None:
    rt = make()
    s1 = await rt.object_send(add, key="s", arg=2, idempotency_key="K")
    s2 = await rt.object_send(add, key="s", arg=2, idempotency_key="K")
    assert (s1.status, s2.status) == ("Accepted", "PreviouslyAccepted")
    assert s1.invocation_id == s2.invocation_id
    await rt.settle()
    assert rt.state("Counter", "s") == {"count": 2}


async def test_concurrent_duplicates_become_one_invocation() -> None:
    rt = make()
    results = await asyncio.gather(*[rt.object_call(add_slowly, key="c", arg=i, idempotency_key="K")
                                     for i in range(3)])
    assert results == [0, 0, 0]
    assert executions == ["slow 0"]
    assert len(rt.invocations()) == 1


async def test_after_the_default_24h_retention_the_same_key_executes_again_with_the_same_id() -> None:
    rt = make()
    h1 = await rt.object_send(add, key="r", arg=1, idempotency_key="K")
    await rt.settle()
    await rt.advance(timedelta(hours=23))
    assert (await rt.object_send(add, key="r", arg=1, idempotency_key="K")).status == "PreviouslyAccepted"
    await rt.advance(timedelta(hours=1))
    h3 = await rt.object_send(add, key="r", arg=1, idempotency_key="K")
    assert h3.status == "Accepted" and h3.invocation_id == h1.invocation_id
    await rt.settle()
    assert rt.state("Counter", "r") == {"count": 2}


async def test_a_service_level_idempotency_retention_is_honoured() -> None:
    rt = make()
    assert await rt.object_call(bump, key="x", idempotency_key="K") == 1
    await rt.advance(timedelta(seconds=4))
    assert await rt.object_call(bump, key="x", idempotency_key="K") == 1
    await rt.advance(timedelta(seconds=1))
    assert await rt.object_call(bump, key="x", idempotency_key="K") == 2


async def test_handler_calls_with_an_idempotency_key_deduplicate_across_callers() -> None:
    rt = make()
    req = {"key": "h", "n": 5, "idem": "pay-1"}
    r1 = await rt.service_call(call_with_key, arg=req)
    r2 = await rt.service_call(call_with_key, arg=req)
    assert r1 == r2 == {"old": 0, "new": 5}
    i1 = await rt.service_call(send_with_key, arg={**req, "idem": "pay-2"})
    i2 = await rt.service_call(send_with_key, arg={**req, "idem": "pay-2"})
    assert i1 == i2
    await rt.settle()
    assert executions == ["add h 5", "add h 5"]  # once per distinct key
    assert rt.state("Counter", "h") == {"count": 10}
    # the ingress can reach the same invocation with the same key
    assert await rt.object_call(add, key="h", arg=5, idempotency_key="pay-1") == {"old": 0, "new": 5}


async def test_a_call_journaled_in_one_attempt_is_not_issued_again_when_the_handler_is_retried() -> None:
    rt = make()
    assert await rt.service_call(call_then_fail_once, arg="j") == {"old": 0, "new": 1}
    assert attempts == [1, 1]  # the handler ran twice
    assert executions == ["add j 1"]  # the callee once
    assert rt.state("Counter", "j") == {"count": 1}
    row = rt.invocations().query("target == 'Proxy/call_then_fail_once'").iloc[0]
    assert row.retry_count == 1 and "transient failure after the call" in row.last_failure
