"""Failures that are not terminal are retried on the clock with the handler's InvocationRetryPolicy."""

from __future__ import annotations

from datetime import timedelta

import pytest
import restate
from restate.exceptions import RetryableError

import playground as pg

seen: list[str] = []

flaky = restate.Service("Flaky")


@flaky.handler()
async def twice_then_ok(ctx: restate.Context) -> int:
    seen.append("attempt")
    if len(seen) < 3:
        raise ValueError(f"boom {len(seen)}")
    return len(seen)


@flaky.handler()
async def wait_then_ok(ctx: restate.Context) -> int:
    seen.append("attempt")
    if len(seen) == 1:
        raise RetryableError("try later", retry_after=timedelta(minutes=7))
    return len(seen)


limited = restate.Service(
    "Limited", invocation_retry_policy=restate.InvocationRetryPolicy(
        initial_interval=timedelta(seconds=1), exponentiation_factor=3.0, max_attempts=3, on_max_attempts="kill"))


@limited.handler()
async def always_fails(ctx: restate.Context) -> None:
    seen.append("attempt")
    raise RuntimeError("still broken")


@limited.handler(invocation_retry_policy=restate.InvocationRetryPolicy(max_attempts=2, on_max_attempts="pause"))
async def pauses(ctx: restate.Context) -> None:
    seen.append("attempt")
    raise RuntimeError("needs a human")


runs = restate.Service("Runs")


@runs.handler()
async def run_retries(ctx: restate.Context) -> str:
    def effect() -> str:
        seen.append("effect")
        if len(seen) < 3:
            raise ConnectionError("flaky network")
        return "done"

    return await ctx.run_typed("call api", effect, restate.RunOptions(max_attempts=5,
                                                                       initial_retry_interval=timedelta(seconds=1)))


@runs.handler()
async def run_gives_up(ctx: restate.Context) -> str:
    def effect() -> str:
        seen.append("effect")
        raise ConnectionError("down")

    try:
        await ctx.run_typed("call api", effect, restate.RunOptions(max_attempts=2))
    except restate.TerminalError as e:
        return f"gave up: {e.message}"
    return "unreachable"


def make(clock: str = "virtual") -> pg.Runtime:
    seen.clear()
    return pg.Runtime(flaky, limited, runs, clock=clock)


async def test_plain_exceptions_are_retried_with_restates_default_backoff() -> None:
    rt = make()
    t0 = rt.now
    assert await rt.service_call(twice_then_ok) == 3
    assert rt.now - t0 == timedelta(milliseconds=500 + 1000)  # 500 ms, then x2
    inv = rt.invocations().iloc[0]
    assert inv.retry_count == 2 and inv.last_failure.startswith("[500 Internal] ValueError('boom 2')\nTraceback")
    errors = rt.invocation(inv.id).errors
    assert [e.message for e in errors] == ["ValueError('boom 1')", "ValueError('boom 2')"]
    assert all(e.code == 500 and "Traceback" in e.stacktrace for e in errors)


async def test_a_failing_invocation_is_backing_off_between_attempts() -> None:
    rt = make("manual")
    h = await rt.service_send(twice_then_ok)
    await rt.settle()
    row = rt.invocations().iloc[0]
    assert row.status == "backing-off" and row.last_failure_error_code == "RT0007"
    assert row.next_retry_at.to_pydatetime() == rt.now + timedelta(milliseconds=500)
    await rt.advance(timedelta(milliseconds=499))
    assert len(seen) == 1
    await rt.advance(timedelta(milliseconds=1))
    assert len(seen) == 2 and rt.invocation(h.invocation_id).status == "backing-off"
    await rt.advance(timedelta(seconds=1))
    assert rt.output(h.invocation_id) == 3


async def test_retryable_error_retry_after_overrides_the_policy_interval() -> None:
    rt = make()
    t0 = rt.now
    assert await rt.service_call(wait_then_ok) == 2
    assert rt.now - t0 == timedelta(minutes=7)


async def test_a_policy_with_max_attempts_and_kill_fails_the_invocation_with_the_last_error() -> None:
    rt = make()
    t0 = rt.now
    with pytest.raises(restate.TerminalError) as ei:
        await rt.service_call(always_fails)
    assert ei.value.status_code == 500 and ei.value.message == "RuntimeError('still broken')"
    assert seen == ["attempt"] * 3
    assert rt.now - t0 == timedelta(seconds=1 + 3)  # 1 s, then x3


async def test_a_policy_that_pauses_leaves_the_invocation_paused_and_the_await_raises() -> None:
    rt = make()
    with pytest.raises(pg.StuckError) as ei:
        await rt.service_call(pauses)
    assert "paused after 2 attempts" in str(ei.value) and "needs a human" in str(ei.value)
    assert rt.invocations().iloc[0].status == "paused"
    assert seen == ["attempt"] * 2


async def test_ctx_run_retries_follow_run_options_and_count_attempts() -> None:
    rt = make()
    assert await rt.service_call(run_retries) == "done"
    assert seen == ["effect"] * 3
    inv_id = rt.invocations().iloc[0].id
    kinds = list(rt.journal(inv_id).entry_type)
    assert kinds == ["Command: Input", "Command: Run", "Notification: Run", "Command: Output"]
    errors = rt.invocation(inv_id).errors
    assert len(errors) == 2 and all("Run" in (e.related_command or "") for e in errors)


async def test_ctx_run_out_of_attempts_becomes_a_terminal_error_the_handler_can_catch() -> None:
    rt = make()
    result = await rt.service_call(run_gives_up)
    assert result.startswith("gave up:") and "down" in result
    assert seen == ["effect"] * 2


@runs.handler()
async def run_for_a_while(ctx: restate.Context) -> str:
    def effect() -> str:
        seen.append("effect")
        raise ConnectionError("still down")

    try:
        await ctx.run_typed("call api", effect, restate.RunOptions(
            max_duration=timedelta(seconds=10), initial_retry_interval=timedelta(seconds=2),
            retry_interval_factor=1.0))
    except restate.TerminalError:
        return "gave up"
    return "unreachable"


async def test_ctx_run_max_duration_is_measured_on_the_virtual_clock() -> None:
    rt = make()
    t0 = rt.now
    assert await rt.service_call(run_for_a_while) == "gave up"
    # retried every 2 s until the 10 s budget was used up: about five or six attempts, not one or many
    assert 5 <= len(seen) <= 7
    assert timedelta(seconds=8) <= rt.now - t0 <= timedelta(seconds=12)
