"""V7-only parts of the SDK's API (scopes, limit keys) get what a default restate-server 1.7 gives them: the
attempt fails with 573 and the invocation retries by its policy (tests/conformance/test_conf_v7.py shows the
same on a real server)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import restate
from restate.retry_policy import InvocationRetryPolicy

import playground as pg
from playground.protocol import framing, messages

greeter = restate.Service("V7Greeter")
runs: list[str] = []


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    runs.append(name)
    return f"Hello {name}"


caller = restate.Service("V7Caller")
THREE_TRIES = InvocationRetryPolicy(initial_interval=timedelta(seconds=1), exponentiation_factor=1.0,
                                    max_attempts=3, on_max_attempts="kill")


@caller.handler(invocation_retry_policy=THREE_TRIES)
async def scoped(ctx: restate.Context, name: str) -> str:
    return await ctx.scope("tenant-a").service_call(greet, arg=name)


@caller.handler()
async def plain(ctx: restate.Context, name: str) -> str:
    return await ctx.service_call(greet, arg=name)


REFUSAL = ("Feature 'scope' is not supported by the negotiated protocol version "
           "'application/vnd.restate.invocation.v6', the minimum required version is "
           "'application/vnd.restate.invocation.v7'")


async def test_a_scoped_call_fails_each_attempt_with_573_until_its_policy_gives_up() -> None:
    runs.clear()
    rt = pg.Runtime(greeter, caller)
    with pytest.raises(restate.TerminalError) as ei:
        await rt.service_call(scoped, arg="ann")
    assert (ei.value.status_code, ei.value.message) == (573, REFUSAL)
    inv = rt.invocation(rt.invocations().query("target == 'V7Caller/scoped'").id.iloc[0])
    assert inv.attempts == 3 and [e.code for e in inv.errors] == [573, 573, 573]
    assert list(rt.journal(inv.id).entry_type) == ["Command: Input"]  # the call was never stored
    assert runs == [] and len(rt.invocations()) == 1  # and nothing was invoked
    assert await rt.service_call(plain, arg="bob") == "Hello bob"  # unscoped calls are unaffected


@pytest.mark.parametrize("which", ["workflow_target", "idempotent_request_target"])
@pytest.mark.parametrize("command", ["AttachInvocation", "GetInvocationOutput"])
def test_scoped_attach_and_output_targets_are_refused_too(command: str, which: str) -> None:
    rt = pg.Runtime(greeter)
    target = (messages.new("WorkflowTarget", workflow_name="W", workflow_key="k", scope="s")
              if which == "workflow_target" else
              messages.new("IdempotentRequestTarget", service_name="S", handler_name="h", idempotency_key="i",
                           scope="s"))
    with pytest.raises(Exception, match="Feature 'scope' is not supported") as ei:
        rt._commands.refuse_v7_only(command, messages.new(command, **{which: target}))
    assert ei.value.code == 573
    unscoped = type(target)()
    unscoped.CopyFrom(target)
    unscoped.ClearField("scope")
    rt._commands.refuse_v7_only(command, messages.new(command, **{which: unscoped}))  # no scope: accepted
    rt._commands.refuse_v7_only(command, messages.new(command, invocation_id="inv_1"))


flaky = restate.Service("V7Flaky")
flaky_runs: list[str] = []


@flaky.handler()
async def boom(ctx: restate.Context) -> None:
    flaky_runs.append("boom")
    raise ValueError("boom")


def _asking_for(app: Any, behavior: int) -> Any:
    """The SDK's app, with every Error it sends rewritten to carry Error.behavior = `behavior` (SDK 1.3.0's
    Python API has no way to ask for one)."""
    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        decoder = framing.Decoder()

        async def rewrite(event: dict) -> None:
            if event["type"] == "http.response.body" and event.get("body"):
                out = b""
                for type_id, flags, payload in decoder.feed(event["body"]):
                    if type_id == messages.TYPE_IDS["Error"]:
                        msg = messages.parse(type_id, payload)
                        msg.behavior = behavior
                        payload = msg.SerializeToString()
                    out += framing.encode_raw(type_id, payload, flags)
                event = {**event, "body": out}
            await send(event)
        await app(scope, receive, rewrite)
    return wrapped


def _runtime_asking_for(behavior: int) -> pg.Runtime:
    rt = pg.Runtime(flaky)
    deployment = rt._services["V7Flaky"].deployment
    deployment.app = _asking_for(deployment.app, behavior)
    return rt


async def test_an_error_asking_to_fail_ends_the_invocation_after_one_attempt() -> None:
    flaky_runs.clear()
    rt = _runtime_asking_for(messages.ERROR_FAIL)
    with pytest.raises(restate.TerminalError) as ei:
        await rt.service_call(boom)
    assert ei.value.status_code == 500 and "boom" in ei.value.message
    assert flaky_runs == ["boom"] and rt.invocations().status.tolist() == ["completed"]


async def test_an_error_asking_to_pause_pauses_after_one_attempt_and_resume_runs_again() -> None:
    flaky_runs.clear()
    rt = _runtime_asking_for(messages.ERROR_PAUSE)
    sent = await rt.service_send(boom)
    await rt.settle()
    await rt.advance(timedelta(minutes=10))
    inv = rt.invocation(sent.invocation_id)
    assert (inv.status, inv.attempts, flaky_runs) == ("paused", 1, ["boom"])
    assert inv.last_failure.code == 500 and "boom" in inv.last_failure.message
    rt.resume(sent.invocation_id)
    await rt.settle()
    assert (inv.status, inv.attempts, len(flaky_runs)) == ("paused", 2, 2)


async def test_an_error_asking_to_retry_follows_the_retry_policy() -> None:
    flaky_runs.clear()
    rt = _runtime_asking_for(messages.ERROR_RETRY)
    sent = await rt.service_send(boom)
    await rt.advance(timedelta(seconds=4))
    inv = rt.invocation(sent.invocation_id)
    assert inv.status == "backing-off" and inv.attempts >= 3


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"scope": 7}, TypeError, "scope must be a str or None, not int"),
    ({"limit_key": b"l"}, TypeError, "limit_key must be a str or None, not bytes"),
    ({"scope": "tenant-a"}, restate.TerminalError, "scoped invocations require vqueues to be enabled"),
    ({"limit_key": "l1"}, restate.TerminalError, "limit-key requires a scope to be set"),
])
@pytest.mark.parametrize("verb", ["generic_call", "generic_send"])
async def test_cells_scope_and_limit_key_are_refused_before_anything_is_created(verb: str, kwargs: dict, error: type,
                                                                         match: str) -> None:
    rt = pg.Runtime(greeter)
    with pytest.raises(error, match=match) as ei:
        await getattr(rt, verb)("V7Greeter", "greet", b'"ann"', **kwargs)
    if error is restate.TerminalError:
        assert ei.value.status_code == 400
    assert len(rt.invocations()) == 0
