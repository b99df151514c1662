"""The services the conformance scenarios drive, written for this suite after the scenario descriptions in
the project's reference (conformance-scenarios.md §4): counters, a proxy that calls by name with raw bytes,
lists and maps per key, failing handlers, a small command interpreter over awakeables, sleeps, runs and
signals, cancel/kill test trees, and workflows.

Both targets run these same objects: the embedded runtime in the test's event loop, the real server through
a hypercorn app on a thread of the same process. So module-level records (`EVENTS`, `ATTEMPTS`) are seen by
the tests on both; every scenario uses fresh keys, so records never mix between tests or targets. The
exception is `CRASHABLE`, which the real target serves from a child process so that it can be killed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

import restate
from restate.exceptions import RetryableError
from restate.retry_policy import InvocationRetryPolicy
from restate.serde import BytesSerde

# what handler code did, per test key, in execution order
EVENTS: dict[str, list[str]] = defaultdict(list)
# attempts / closure executions per key
ATTEMPTS: dict[str, int] = defaultdict(int)

FAST_RETRY = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=50), exponentiation_factor=1.0,
                                   max_interval=timedelta(milliseconds=50), max_attempts=20, on_max_attempts="kill")

# --------------------------------------------------------------------------------------------- state (A)
counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> dict[str, int]:
    old = await ctx.get("counter") or 0
    ctx.set("counter", old + n)
    EVENTS[ctx.key()].append(f"add {n}")
    return {"oldValue": old, "newValue": old + n}


@counter.handler()
async def get(ctx: restate.ObjectContext) -> int:
    return await ctx.get("counter") or 0


@counter.handler()
async def reset(ctx: restate.ObjectContext) -> None:
    ctx.clear("counter")


@counter.handler(name="addThenFail")
async def add_then_fail(ctx: restate.ObjectContext, n: int) -> None:
    old = await ctx.get("counter") or 0
    ctx.set("counter", old + n)
    raise restate.TerminalError(ctx.key())


map_object = restate.VirtualObject("MapObject")


@map_object.handler(name="set")
async def map_set(ctx: restate.ObjectContext, entry: dict[str, str]) -> None:
    ctx.set(entry["key"], entry["value"])


@map_object.handler(name="get")
async def map_get(ctx: restate.ObjectContext, key: str) -> str:
    return await ctx.get(key) or ""


@map_object.handler(name="clearAll")
async def map_clear_all(ctx: restate.ObjectContext) -> list[dict[str, str]]:
    entries = [{"key": k, "value": await ctx.get(k)} for k in await ctx.state_keys()]
    ctx.clear_all()
    return entries


list_object = restate.VirtualObject("ListObject")


@list_object.handler()
async def append(ctx: restate.ObjectContext, value: str) -> None:
    ctx.set("list", (await ctx.get("list") or []) + [value])
    EVENTS[ctx.key()].append(value)


@list_object.handler(name="get")
async def list_get(ctx: restate.ObjectContext) -> list[str]:
    return await ctx.get("list") or []


@list_object.handler(name="clear")
async def list_clear(ctx: restate.ObjectContext) -> list[str]:
    result = await ctx.get("list") or []
    ctx.clear("list")
    return result


# --------------------------------------------------------------------------------------------- proxy (B, C)
proxy = restate.Service("Proxy")


def _req_args(req: dict[str, Any]) -> dict[str, Any]:
    return {"service": req["serviceName"], "handler": req["handlerName"], "arg": bytes(req["message"]),
            "key": req.get("virtualObjectKey"), "idempotency_key": req.get("idempotencyKey")}


@proxy.handler(name="call")
async def proxy_call(ctx: restate.Context, req: dict[str, Any]) -> list[int]:
    return list(await ctx.generic_call(**_req_args(req)))


@proxy.handler(name="oneWayCall")
async def proxy_one_way(ctx: restate.Context, req: dict[str, Any]) -> str:
    delay = timedelta(milliseconds=req["delayMillis"]) if req.get("delayMillis") else None
    handle = ctx.generic_send(**_req_args(req), send_delay=delay)
    return await handle.invocation_id()


@proxy.handler(name="manyCalls")
async def proxy_many(ctx: restate.Context, requests: list[dict[str, Any]]) -> None:
    to_await = []
    for r in requests:
        if r.get("oneWayCall"):
            ctx.generic_send(**_req_args(r["proxyRequest"]))
        else:
            fut = ctx.generic_call(**_req_args(r["proxyRequest"]))
            if r.get("awaitAtTheEnd"):
                to_await.append(fut)
    for fut in to_await:
        await fut


# --------------------------------------------------------------------------------------------- errors, retries, run (D)
failing = restate.VirtualObject("Failing")


@failing.handler(name="terminallyFailingCall")
async def terminally_failing_call(ctx: restate.ObjectContext, em: dict[str, Any]) -> str:
    ATTEMPTS[ctx.key()] += 1
    raise restate.TerminalError(em["errorMessage"], metadata=em.get("metadata"))


@failing.handler(name="callTerminallyFailingCall")
async def call_terminally_failing_call(ctx: restate.ObjectContext, em: dict[str, Any]) -> str:
    await ctx.object_call(terminally_failing_call, key=str(ctx.uuid()), arg=em)
    raise restate.TerminalError("Should not reach here")


@failing.handler(name="catchFailingCall")
async def catch_failing_call(ctx: restate.ObjectContext, em: dict[str, Any]) -> dict[str, Any]:
    """Calls terminallyFailingCall and reports the error it caught: code, message and metadata, across a hop."""
    try:
        await ctx.object_call(terminally_failing_call, key=ctx.key() + "-callee", arg=em)
    except restate.TerminalError as exc:
        return {"code": exc.status_code, "message": exc.message, "metadata": exc.metadata or {}}
    return {}


@failing.handler(name="failingCallWithEventualSuccess", invocation_retry_policy=FAST_RETRY)
async def failing_call_with_eventual_success(ctx: restate.ObjectContext) -> int:
    ATTEMPTS[ctx.key()] += 1
    if ATTEMPTS[ctx.key()] < 4:
        raise ValueError(f"failed attempt {ATTEMPTS[ctx.key()]}")
    return ATTEMPTS[ctx.key()]


@failing.handler(name="terminallyFailingSideEffect")
async def terminally_failing_side_effect(ctx: restate.ObjectContext, em: dict[str, Any]) -> None:
    key = ctx.key()

    def effect() -> None:
        ATTEMPTS[key] += 1
        raise restate.TerminalError(em["errorMessage"], metadata=em.get("metadata"))

    await ctx.run_typed("sideEffect", effect)
    raise ValueError("Should not reach here")


@failing.handler(name="sideEffectSucceedsAfterGivenAttempts", invocation_retry_policy=FAST_RETRY)
async def side_effect_succeeds_after(ctx: restate.ObjectContext, n: int) -> int:
    key = ctx.key()

    def effect() -> int:
        ATTEMPTS[key] += 1
        if ATTEMPTS[key] < n:
            raise ValueError(f"failed side effect attempt {ATTEMPTS[key]}")
        return ATTEMPTS[key]

    return await ctx.run_typed("sideEffect", effect, restate.RunOptions(
        max_attempts=n + 5, initial_retry_interval=timedelta(milliseconds=10)))


@failing.handler(name="sideEffectFailsAfterGivenAttempts", invocation_retry_policy=FAST_RETRY)
async def side_effect_fails_after(ctx: restate.ObjectContext, n: int) -> int:
    key = ctx.key()

    def effect() -> None:
        ATTEMPTS[key] += 1
        raise ValueError(f"failed side effect attempt {ATTEMPTS[key]}")

    try:
        await ctx.run_typed("sideEffect", effect, restate.RunOptions(
            max_attempts=n, initial_retry_interval=timedelta(milliseconds=10)))
    except restate.TerminalError:
        return ATTEMPTS[key]
    raise restate.TerminalError("the side effect should have failed")


@failing.handler(name="terminalInRun")
async def terminal_in_run(ctx: restate.ObjectContext) -> None:
    key = ctx.key()

    def ohoh() -> None:
        ATTEMPTS[key] += 1
        raise restate.TerminalError("Simulated terminal error")

    await ctx.run_typed("foo", ohoh, restate.RunOptions(max_attempts=3))


@failing.handler(name="wrappedTerminal", invocation_retry_policy=FAST_RETRY)
async def wrapped_terminal(ctx: restate.ObjectContext) -> None:
    ATTEMPTS[ctx.key()] += 1
    try:
        raise restate.TerminalError("Simulated terminal error")
    except restate.TerminalError as te:
        raise ValueError("Wrapped terminal error") from te


_SLOW_RETRY = InvocationRetryPolicy(max_attempts=3, initial_interval=timedelta(hours=1), on_max_attempts="kill")


@failing.handler(name="retryAfter", invocation_retry_policy=_SLOW_RETRY)
async def retry_after(ctx: restate.ObjectContext, wrapped: bool) -> None:
    ATTEMPTS[ctx.key()] += 1
    if ATTEMPTS[ctx.key()] == 1:
        err = RetryableError("retry me soon", retry_after=timedelta(milliseconds=100))
        if wrapped:
            try:
                raise err
            except RetryableError as re:
                raise ValueError("wrapped retryable") from re
        raise err
    raise restate.TerminalError(f"attempt {ATTEMPTS[ctx.key()]}")


# --------------------------------------------------------------------------------------------- utilities (M)
utils = restate.Service("TestUtilsService")


@utils.handler(name="uppercaseEcho")
async def uppercase_echo(ctx: restate.Context, s: str) -> str:
    return s.upper()


@utils.handler(name="echoHeaders")
async def echo_headers(ctx: restate.Context) -> dict[str, str]:
    return dict(ctx.request().headers)


@utils.handler(name="rawEcho", accept="application/octet-stream", content_type="application/octet-stream",
               input_serde=BytesSerde(), output_serde=BytesSerde())
async def raw_echo(ctx: restate.Context, data: bytes) -> bytes:
    return data


@utils.handler(name="cancelInvocation")
async def cancel_invocation(ctx: restate.Context, invocation_id: str) -> None:
    ctx.cancel_invocation(invocation_id)


@utils.handler(name="resolveSignal")
async def resolve_signal(ctx: restate.Context, req: dict[str, str]) -> None:
    ctx.resolve_signal(req["invocationId"], req["signalName"], req["value"])


@utils.handler(name="rejectSignal")
async def reject_signal(ctx: restate.Context, req: dict[str, str]) -> None:
    ctx.reject_signal(req["invocationId"], req["signalName"], req["reason"])


@utils.handler(name="callWithHeaders")
async def call_with_headers(ctx: restate.Context, headers: dict[str, str]) -> dict[str, str]:
    return await ctx.service_call(echo_headers, arg=None, headers=headers)


private_greeter = restate.Service("PrivateGreeter", ingress_private=True)


@private_greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


proxy_greeter = restate.Service("ProxyGreeter")


@proxy_greeter.handler(name="greet")
async def proxy_greet(ctx: restate.Context, name: str) -> str:
    return await ctx.service_call(greet, arg=name)


# --------------------------------------------------------------------------------------------- awakeable holder (F)
holder = restate.VirtualObject("AwakeableHolder")


@holder.handler()
async def hold(ctx: restate.ObjectContext, awakeable_id: str) -> None:
    ctx.set("id", awakeable_id)


@holder.handler(name="hasAwakeable")
async def holder_has_awakeable(ctx: restate.ObjectContext) -> bool:
    return await ctx.get("id") is not None


@holder.handler()
async def unlock(ctx: restate.ObjectContext, payload: str) -> None:
    awakeable_id = await ctx.get("id")
    if awakeable_id is None:
        raise restate.TerminalError("No awakeable is registered")
    ctx.resolve_awakeable(awakeable_id, payload)


# ---------------------------------------------------------------------------------- command interpreter (A, E, F, G, I)
interp = restate.VirtualObject("Interpreter")


def _make(ctx: restate.ObjectContext, cmd: dict[str, Any]) -> tuple[Any, Any]:
    """A durable future for one command, and how to turn its value into the result text."""
    kind = cmd["type"]
    if kind == "createAwakeable":
        awk_id, fut = ctx.awakeable(type_hint=str)
        ctx.set("awk-" + cmd["awakeableKey"], awk_id)
        return fut, lambda v: v
    if kind == "sleep":
        return ctx.sleep(timedelta(milliseconds=cmd["timeoutMillis"])), lambda _v: "sleep"
    if kind == "runReturns":
        value = cmd["value"]

        async def returns() -> str:
            return value
        return ctx.run_typed("run", returns), lambda v: v
    if kind == "runThrowTerminalException":
        reason = cmd["reason"]

        async def throws() -> str:
            raise restate.TerminalError(reason)
        return ctx.run_typed("run", throws), lambda v: v
    if kind == "createSignal":
        return ctx.signal(cmd["signalName"], type_hint=str), lambda v: v
    raise restate.TerminalError(f"unknown command {kind}")


async def _outcome(fut: Any, post: Any) -> tuple[bool, str]:
    try:
        return True, post(await fut)
    except restate.TerminalError as exc:
        return False, exc.message


async def _await_any(ctx: restate.ObjectContext, made: list[tuple[Any, Any]], successful: bool) -> str:
    post_of = {id(f): p for f, p in made}
    last_error = "all failed"
    async for fut in restate.as_completed(*[f for f, _ in made]):
        ok, value = await _outcome(fut, post_of[id(fut)])
        if ok:
            return value
        if not successful:
            raise restate.TerminalError(value)
        last_error = value
    raise restate.TerminalError(last_error)


@interp.handler(name="interpretCommands")
async def interpret_commands(ctx: restate.ObjectContext, program: dict[str, Any]) -> str:
    result = ""
    for cmd in program["commands"]:
        kind = cmd["type"]
        if kind == "awaitOne":
            fut, post = _make(ctx, cmd["command"])
            result = post(await fut)
        elif kind in ("awaitAny", "awaitFirstCompleted"):
            result = await _await_any(ctx, [_make(ctx, c) for c in cmd["commands"]], successful=False)
        elif kind in ("awaitAnySuccessful", "awaitFirstSucceededOrAllFailed"):
            result = await _await_any(ctx, [_make(ctx, c) for c in cmd["commands"]], successful=True)
        elif kind == "awaitAllCompleted":
            parts = []
            for fut, post in [_make(ctx, c) for c in cmd["commands"]]:
                ok, value = await _outcome(fut, post)
                parts.append(("ok:" if ok else "err:") + value)
            result = "|".join(parts)
        elif kind == "awaitAllSucceededOrFirstFailed":
            made = [_make(ctx, c) for c in cmd["commands"]]
            result = "|".join([post(await fut) for fut, post in made])
        elif kind == "awaitAwakeableOrTimeout":
            awk_id, awk = ctx.awakeable(type_hint=str)
            ctx.set("awk-" + cmd["awakeableKey"], awk_id)
            match await restate.select(awakeable=awk, timeout=ctx.sleep(timedelta(milliseconds=cmd["timeoutMillis"]))):
                case ["awakeable", value]:
                    result = value
                case _:
                    raise restate.TerminalError("await-timeout")
        else:
            raise restate.TerminalError(f"unknown command {kind}")
        EVENTS[ctx.key()].append(result)
    ctx.set("results", (await ctx.get("results") or []) + [result])
    return result


@interp.handler(name="hasAwakeable", kind="shared")
async def interp_has_awakeable(ctx: restate.ObjectSharedContext, awakeable_key: str) -> bool:
    return await ctx.get("awk-" + awakeable_key) is not None


@interp.handler(name="resolveAwakeable", kind="shared")
async def interp_resolve(ctx: restate.ObjectSharedContext, req: dict[str, str]) -> None:
    awk_id = await ctx.get("awk-" + req["awakeableKey"])
    if awk_id is None:
        raise restate.TerminalError("No awakeable is registered")
    ctx.resolve_awakeable(awk_id, req["value"])


@interp.handler(name="rejectAwakeable", kind="shared")
async def interp_reject(ctx: restate.ObjectSharedContext, req: dict[str, str]) -> None:
    awk_id = await ctx.get("awk-" + req["awakeableKey"])
    if awk_id is None:
        raise restate.TerminalError("No awakeable is registered")
    ctx.reject_awakeable(awk_id, req["reason"])


@interp.handler(name="getResults", kind="shared")
async def interp_results(ctx: restate.ObjectSharedContext) -> list[str]:
    return await ctx.get("results") or []


# --------------------------------------------------------------------------------------------- cancellation (J)
cancel_blocking = restate.VirtualObject("CancelTestBlockingService")


@cancel_blocking.handler()
async def block(ctx: restate.ObjectContext, op: str) -> None:
    awk_id, awk = ctx.awakeable(type_hint=str)
    await ctx.object_call(hold, key=ctx.key(), arg=awk_id)
    await awk
    EVENTS[ctx.key()].append(f"blocking on {op}")
    if op == "CALL":
        await ctx.object_call(block, key=ctx.key(), arg=op)  # queued behind itself: never runs
    elif op == "SLEEP":
        await ctx.sleep(timedelta(days=1024))
    elif op == "AWAKEABLE":
        _, never = ctx.awakeable(type_hint=str)
        await never


@cancel_blocking.handler(name="isUnlocked")
async def blocking_is_unlocked(ctx: restate.ObjectContext) -> None:
    return None


cancel_runner = restate.VirtualObject("CancelTestRunner")


@cancel_runner.handler(name="startTest")
async def start_test(ctx: restate.ObjectContext, op: str) -> None:
    try:
        await ctx.object_call(block, key=ctx.key(), arg=op)
    except restate.TerminalError as exc:
        if exc.status_code == 409:
            ctx.set("state", True)
            EVENTS[ctx.key()].append(f"runner saw {exc.status_code} {exc.message}")
        else:
            raise


@cancel_runner.handler(name="verifyTest")
async def verify_test(ctx: restate.ObjectContext) -> bool:
    return await ctx.get("state") or False


# --------------------------------------------------------------------------------------------- kill (K)
kill_singleton = restate.VirtualObject("KillTestSingleton")


@kill_singleton.handler(name="recursiveCall")
async def recursive_call(ctx: restate.ObjectContext) -> None:
    awk_id, awk = ctx.awakeable(type_hint=str)
    ctx.object_send(hold, key=ctx.key(), arg=awk_id)
    EVENTS[ctx.key()].append("recursiveCall started")
    await awk
    await ctx.object_call(recursive_call, key=ctx.key(), arg=None)


@kill_singleton.handler(name="isUnlocked")
async def singleton_is_unlocked(ctx: restate.ObjectContext) -> None:
    return None


kill_runner = restate.VirtualObject("KillTestRunner")


@kill_runner.handler(name="startCallTree")
async def start_call_tree(ctx: restate.ObjectContext) -> None:
    await ctx.object_call(recursive_call, key=ctx.key(), arg=None)


# --------------------------------------------------------------------------------------------- workflows (H)
block_wf = restate.Workflow("BlockAndWaitWorkflow")


@block_wf.main()
async def run(ctx: restate.WorkflowContext, name: str) -> str:
    ctx.set("my-state", name)
    EVENTS[ctx.key()].append(f"run {name}")
    output = await ctx.promise("durable-promise", type_hint=str).value()
    if await ctx.promise("durable-promise", type_hint=str).peek() is None:
        raise restate.TerminalError("the promise should be resolved")
    return output


@block_wf.handler()
async def unblock(ctx: restate.WorkflowSharedContext, output: str) -> None:
    await ctx.promise("durable-promise", type_hint=str).resolve(output)


@block_wf.handler(name="getState")
async def wf_get_state(ctx: restate.WorkflowSharedContext) -> str:
    return await ctx.get("my-state") or ""


payment = restate.Workflow("Payment")


@payment.main()
async def pay(ctx: restate.WorkflowContext, amount: int) -> str:
    ctx.set("status", "verifying")

    async def charge() -> str:
        return f"charged {amount}"
    await ctx.run_typed("payment", charge)
    result = await ctx.promise("verify.payment", type_hint=str).value()
    return f"Verified {result}!"


@payment.handler(name="paymentVerified")
async def payment_verified(ctx: restate.WorkflowSharedContext, result: str) -> None:
    await ctx.promise("verify.payment", type_hint=str).resolve(result)


self_promise = restate.Workflow("SelfPromise")


@self_promise.main(name="run")
async def self_promise_run(ctx: restate.WorkflowContext) -> str:
    await ctx.promise("p", type_hint=str).resolve("success")
    return await ctx.promise("p", type_hint=str).value()


# --------------------------------------------------------------------------------------------- crashing deployment (E)
# Served apart from ALL: on the real target by a separate `python -m playground serve` process that the
# scenario kills (S34), so the retries must outlast that process's restart (20 s of 50 ms steps).
CRASH_RETRY = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=50), exponentiation_factor=1.0,
                                    max_interval=timedelta(milliseconds=50), max_attempts=400, on_max_attempts="kill")
sleeper = restate.Service("Sleeper")


@sleeper.handler(name="sleep", invocation_retry_policy=CRASH_RETRY)
async def sleeper_sleep(ctx: restate.Context, millis: int) -> str:
    await ctx.sleep(timedelta(milliseconds=millis))
    return "sleep"


CRASHABLE = [sleeper]

# --------------------------------------------------------------------------------------------- deadlocks (differences)
cyc_a = restate.VirtualObject("CycA")
cyc_b = restate.VirtualObject("CycB")


@cyc_a.handler(name="hop")
async def hop_a(ctx: restate.ObjectContext, depth: int) -> str:
    if depth <= 0:
        return "A done"
    return await ctx.object_call(hop_b, key=ctx.key(), arg=depth - 1)


@cyc_b.handler(name="hop")
async def hop_b(ctx: restate.ObjectContext, depth: int) -> str:
    if depth <= 0:
        return "B done"
    return await ctx.object_call(hop_a, key=ctx.key(), arg=depth - 1)


ALL = [counter, map_object, list_object, proxy, failing, utils, private_greeter, proxy_greeter, holder, interp,
       cancel_blocking, cancel_runner, kill_singleton, kill_runner, block_wf, payment, self_promise, cyc_a, cyc_b]

# --------------------------------------------------------------------------------------------- issue 12: V7 features
# What a default restate-server 1.7 (protocol V6 negotiated) does with the V7-only parts of the SDK's API.
v7_features = restate.VirtualObject("V7Features")


@v7_features.handler(name="scopedCall")
async def v7_scoped_call(ctx: restate.ObjectContext) -> str:
    ATTEMPTS[ctx.key()] += 1
    ctx.set("before", 1)
    return await ctx.scope("tenant-a").service_call(uppercase_echo, arg="x")


_THREE_TRIES = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=50), exponentiation_factor=1.0,
                                    max_attempts=3, on_max_attempts="kill")


@v7_features.handler(name="scopedCallThreeTries", invocation_retry_policy=_THREE_TRIES)
async def v7_scoped_call_three_tries(ctx: restate.ObjectContext) -> str:
    ATTEMPTS[ctx.key()] += 1
    return await ctx.scope("tenant-a").service_call(uppercase_echo, arg="x")


@v7_features.handler(name="scopedSend")
async def v7_scoped_send(ctx: restate.ObjectContext) -> str:
    ATTEMPTS[ctx.key()] += 1
    return await ctx.scope("tenant-a").object_send(add, key=ctx.key(), arg=1).invocation_id()


@v7_features.handler(name="limitKeyCall")
async def v7_limit_key_call(ctx: restate.ObjectContext) -> str:
    ATTEMPTS[ctx.key()] += 1
    return (await ctx.generic_call("TestUtilsService", "uppercaseEcho", b'"x"', limit_key="tenant-a")).decode()


request_info = restate.Service("RequestInfo")


@request_info.handler(name="info")
async def request_info_fields(ctx: restate.Context) -> dict[str, Any]:
    r = ctx.request()
    return {"scope": r.scope, "limitKey": r.limit_key, "idempotencyKey": r.idempotency_key}


@request_info.handler(name="callInfo")
async def request_info_call(ctx: restate.Context, idempotency_key: str) -> dict[str, Any]:
    return await ctx.service_call(request_info_fields, arg=None, idempotency_key=idempotency_key)


ALL += [v7_features, request_info]

# --------------------------------------------------------------------------------------------- issue 12: round 2
# Service communication and its edges: calls and sends by name, delays, idempotency keys from handlers, odd
# keys, big payloads, errors through several hops, many keys.
hops = restate.Service("Hops")


def _hop_args(req: dict[str, Any]) -> dict[str, Any]:
    arg = json.dumps(req["arg"]).encode() if "arg" in req else b""
    return {"service": req["service"], "handler": req["handler"], "arg": arg, "key": req.get("key"),
            "idempotency_key": req.get("idempotencyKey")}


@hops.handler(name="genericCall")
async def hops_generic_call(ctx: restate.Context, req: dict[str, Any]) -> Any:
    """Call any handler by name with a JSON argument; answers the callee's JSON result."""
    out = await ctx.generic_call(**_hop_args(req))
    return json.loads(out) if out else None


@hops.handler(name="genericSend")
async def hops_generic_send(ctx: restate.Context, req: dict[str, Any]) -> str:
    """Send to any handler by name; `delayMillis` (0 included) becomes send_delay. Answers the invocation id."""
    delay = timedelta(milliseconds=req["delayMillis"]) if req.get("delayMillis") is not None else None
    return await ctx.generic_send(**_hop_args(req), send_delay=delay).invocation_id()


@hops.handler(name="fail")
async def hops_fail(ctx: restate.Context, em: dict[str, Any]) -> None:
    raise restate.TerminalError(em["message"], em["code"], metadata=em["metadata"])


@hops.handler(name="middle")
async def hops_middle(ctx: restate.Context, em: dict[str, Any]) -> None:
    await ctx.service_call(hops_fail, arg=em)


@hops.handler(name="top")
async def hops_top(ctx: restate.Context, em: dict[str, Any]) -> None:
    await ctx.service_call(hops_middle, arg=em)


@hops.handler(name="catchTop")
async def hops_catch_top(ctx: restate.Context, em: dict[str, Any]) -> dict[str, Any]:
    try:
        await ctx.service_call(hops_top, arg=em)
    except restate.TerminalError as exc:
        return {"code": exc.status_code, "message": exc.message, "metadata": exc.metadata or {}}
    return {}


@hops.handler(name="relayBig")
async def hops_relay_big(ctx: restate.Context, size: int) -> dict[str, Any]:
    """Pass `size` characters to another handler and back; answers what came back, summarised."""
    out = await ctx.service_call(uppercase_echo, arg="b" * (size - 1) + "z")
    return {"length": len(out), "first": out[0], "last": out[-1], "allB": out[:-1] == "B" * (size - 1)}


@hops.handler(name="setMany")
async def hops_set_many(ctx: restate.Context, req: dict[str, Any]) -> None:
    """Set an entry on `n` keys of MapObject, one send each."""
    for i in range(req["n"]):
        ctx.object_send(map_set, key=f"{req['prefix']}-{i}", arg={"key": "i", "value": str(i)})


greeting = restate.Workflow("GreetingWf")


@greeting.main(name="run")
async def greeting_run(ctx: restate.WorkflowContext, name: str) -> str:
    EVENTS[ctx.key()].append(f"run {name}")
    return f"Hello {name}"


ALL += [hops, greeting]
# --------------------------------------------------------------------------------------------- clock range (i13)
far_future = restate.Service("FarFuture")


@far_future.handler(name="sleepPastTheClock",
                    invocation_retry_policy=InvocationRetryPolicy(max_attempts=2, on_max_attempts="kill"))
async def sleep_past_the_clock(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(days=3_000_000))  # wakes in year 10239
    return "woke"


ALL += [far_future]
# ------------------------------------------------------------------------------------------- missing targets (issue 12)
# MissingCaller calls and sends to services that neither engine has at the start. Each scenario registers its
# own late service with t.register_late(...) (on the real server a registration lasts the whole session, so no
# two scenarios share one); Nowhere is never registered.
missing_caller = restate.Service("MissingCaller")
late_service = restate.Service("LateService")
late_send_object = restate.VirtualObject("LateSendObject")
late_call_object = restate.VirtualObject("LateCallObject")
late_waited = restate.Service("LateWaited")
nowhere = restate.Service("Nowhere")
evolving = restate.Service("Evolving")  # registered from the start without the handler MissingCaller calls
evolving_v2 = restate.Service("Evolving")  # the same service with it, registered late
GIVE_UP = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=100), max_attempts=3, on_max_attempts="kill")


@late_service.handler(name="hello")
async def late_hello(ctx: restate.Context, x: str) -> str:
    return f"late hello {x}"


@late_waited.handler(name="hello")
async def late_waited_hello(ctx: restate.Context, x: str) -> str:
    return f"waited hello {x}"


@late_send_object.handler(name="remember")
async def late_send_remember(ctx: restate.ObjectContext, x: str) -> None:
    ctx.set("x", x)


@late_call_object.handler(name="remember")
async def late_call_remember(ctx: restate.ObjectContext, x: str) -> str:
    return f"{ctx.key()} remembers {x}"


@nowhere.handler(name="hello")
async def nowhere_hello(ctx: restate.Context, x: str) -> str:
    return "unreachable"


@evolving.handler(name="old")
async def evolving_old(ctx: restate.Context, x: str) -> str:
    return f"old {x}"


evolving_v2.handler(name="old")(evolving_old)


@evolving_v2.handler(name="addedLater")
async def evolving_added(ctx: restate.Context, x: str) -> str:
    return f"added later {x}"


@missing_caller.handler(name="callLate")
async def call_late(ctx: restate.Context, x: str) -> str:
    return await ctx.service_call(late_hello, arg=x)


@missing_caller.handler(name="callLateWaited")
async def call_late_waited(ctx: restate.Context, x: str) -> str:
    return await ctx.service_call(late_waited_hello, arg=x)


@missing_caller.handler(name="sendLate")
async def send_late(ctx: restate.Context, key: str) -> str:
    ctx.object_send(late_send_remember, key=key, arg="sent")
    return "sent"


@missing_caller.handler(name="callLateObject")
async def call_late_object(ctx: restate.Context, key: str) -> str:
    return await ctx.object_call(late_call_remember, key=key, arg="called")


@missing_caller.handler(name="callAddedLater")
async def call_added_later(ctx: restate.Context, x: str) -> str:
    return await ctx.service_call(evolving_added, arg=x)


@missing_caller.handler(name="callNowhereAfterRun")
async def call_nowhere_after_run(ctx: restate.Context, x: str) -> str:
    await ctx.run_typed("before", lambda: "ran")
    return await ctx.service_call(nowhere_hello, arg=x)


@missing_caller.handler(name="callNowhereGivingUp", invocation_retry_policy=GIVE_UP)
async def call_nowhere_giving_up(ctx: restate.Context, x: str) -> str:
    return await ctx.service_call(nowhere_hello, arg=x)


@missing_caller.handler(name="callServiceWithKey")
async def call_service_with_key(ctx: restate.Context, x: str) -> str:
    return await ctx.object_call(evolving_old, key="oops", arg=x)  # a key for a Service: RT0017


# ----------------------------------------------------------------------------------------- kill before start (issue 12)
kill_gate = restate.VirtualObject("KillGate")
kill_caller = restate.Service("KillCaller")


@kill_gate.handler()
async def occupy(ctx: restate.ObjectContext) -> str:
    """Hold the key's lock until the test unlocks AwakeableHolder(key)."""
    awakeable_id, awakeable = ctx.awakeable(type_hint=str)
    ctx.object_send(hold, key=ctx.key(), arg=awakeable_id)
    return await awakeable


@kill_gate.handler()
async def record(ctx: restate.ObjectContext, tag: str) -> str:
    EVENTS[ctx.key()].append(f"record {tag}")
    return f"recorded {tag}"


@kill_caller.handler(name="callRecord")
async def call_record(ctx: restate.Context, key: str) -> str:
    try:
        return await ctx.object_call(record, key=key, arg="from caller")
    except restate.TerminalError as exc:
        return f"caught {exc.status_code} {exc.message}"


@kill_caller.handler(name="callRecordUncaught")
async def call_record_uncaught(ctx: restate.Context, key: str) -> str:
    return await ctx.object_call(record, key=key, arg="from caller")


@kill_caller.handler(name="attachTo")
async def attach_to(ctx: restate.Context, invocation_id: str) -> str:
    try:
        return await ctx.attach_invocation(invocation_id, type_hint=str)
    except restate.TerminalError as exc:
        return f"caught {exc.status_code} {exc.message}"


ALL += [missing_caller, evolving, kill_gate, kill_caller]

# --------------------------------------------------------------------------------------------- issue 12: failure texts
# Attempts that fail in the ways sys_invocation's last_failure columns describe. Each handler takes a fresh
# string and counts its attempts in ATTEMPTS under it; retries wait an hour unless the scenario needs a second.
failure_formats = restate.Service("FailureFormats")
_HOUR_RETRY = InvocationRetryPolicy(initial_interval=timedelta(hours=1), max_attempts=10)
_QUICK_RETRY = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=100), exponentiation_factor=1.0,
                                     max_attempts=100)


@failure_formats.handler(name="plain", invocation_retry_policy=_HOUR_RETRY)
async def ff_plain(ctx: restate.Context, x: str) -> str:
    ATTEMPTS[x] += 1
    raise ValueError(f"plain failure {x}")


@failure_formats.handler(name="runFails", invocation_retry_policy=_HOUR_RETRY)
async def ff_run_fails(ctx: restate.Context, x: str) -> str:
    await ctx.run_typed("reserve", lambda: "ok")

    def charge() -> str:
        ATTEMPTS[x] += 1
        raise ValueError("card declined")
    return await ctx.run_typed("charge", charge)


@failure_formats.handler(name="mismatch", invocation_retry_policy=_QUICK_RETRY)
async def ff_mismatch(ctx: restate.Context, x: str) -> str:
    """Non-deterministic on purpose: the first attempt journals a run, the next ones sleep there instead."""
    ATTEMPTS[x] += 1
    if ATTEMPTS[x] == 1:
        await ctx.run_typed("roll", lambda: "a")
        raise ValueError("the first attempt fails after its run")
    await ctx.sleep(timedelta(milliseconds=1))
    return "never"


@failure_formats.handler(name="callMissing", invocation_retry_policy=_HOUR_RETRY)
async def ff_call_missing(ctx: restate.Context, x: str) -> str:
    ATTEMPTS[x] += 1
    return (await ctx.generic_call("Nowhere", "hello", b'"x"')).decode()


@failure_formats.handler(name="keyToService", invocation_retry_policy=_HOUR_RETRY)
async def ff_key_to_service(ctx: restate.Context, x: str) -> str:
    ATTEMPTS[x] += 1
    return (await ctx.generic_call("FailureFormats", "echo", b'"x"', key="k")).decode()


@failure_formats.handler(name="echo")
async def ff_echo(ctx: restate.Context, x: str) -> str:
    return x


@failure_formats.handler(name="failThenSleep", invocation_retry_policy=_QUICK_RETRY)
async def ff_fail_then_sleep(ctx: restate.Context, x: str) -> str:
    ATTEMPTS[x] += 1
    if ATTEMPTS[x] == 1:
        raise ValueError("the first attempt fails")
    await ctx.sleep(timedelta(hours=1))
    return "slept"


@failure_formats.handler(name="failThenTerminal", invocation_retry_policy=_QUICK_RETRY)
async def ff_fail_then_terminal(ctx: restate.Context, x: str) -> str:
    ATTEMPTS[x] += 1
    if ATTEMPTS[x] == 1:
        raise ValueError("the first attempt fails")
    raise restate.TerminalError("the second gives up", status_code=418)


@failure_formats.handler(name="pauses", invocation_retry_policy=InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=50), max_attempts=2, on_max_attempts="pause"))
async def ff_pauses(ctx: restate.Context, x: str) -> str:
    ATTEMPTS[x] += 1
    raise ValueError(f"attempt {ATTEMPTS[x]} fails")


ALL += [failure_formats]
