"""Conformance scenarios D-G (terminal errors, retries and ctx.run; sleeps and timers; awakeables; named
signals), written once and run on both engines (see conformance_targets.py)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from datetime import timedelta

import conformance_services as S
from conformance_targets import NotReady, fails, fresh, scenario


# --------------------------------------------------------------------------------------------- D. errors, retries, run
@scenario
async def test_s18_terminal_error_reaches_the_caller_after_one_attempt(t):
    k = fresh()
    exc = await fails(t.call("Failing", "terminallyFailingCall", {"errorMessage": "my error"}, key=k,
                              idempotency_key=fresh()))
    assert (exc.code, exc.message, exc.metadata) == (500, "my error", {})
    assert S.ATTEMPTS[k] == 1


@scenario
async def test_s19_repeated_terminal_failures_leave_the_service_healthy(t):
    for i in range(3):
        exc = await fails(t.call("Failing", "terminallyFailingCall", {"errorMessage": f"my error {i}"}, key=fresh()))
        assert exc.message == f"my error {i}"
        md = {"n": str(i)}
        exc = await fails(t.call("Failing", "terminallyFailingCall", {"errorMessage": "m", "metadata": md},
                                  key=fresh()))
        assert exc.metadata == md
    assert await t.call("Counter", "add", 1, key=fresh()) == {"oldValue": 0, "newValue": 1}


@scenario
async def test_s20_terminal_error_metadata_reaches_the_caller(t):
    md = {"key1": "value1", "key2": "value2"}
    exc = await fails(t.call("Failing", "terminallyFailingCall",
                              {"errorMessage": "my error with metadata", "metadata": md}, key=fresh(),
                              idempotency_key=fresh()))
    assert (exc.code, exc.message, exc.metadata) == (500, "my error with metadata", md)


@scenario
async def test_s21_terminal_error_inside_run_fails_the_invocation_once(t):
    k = fresh()
    exc = await fails(t.call("Failing", "terminallyFailingSideEffect", {"errorMessage": "failed side effect"},
                              key=k))
    assert (exc.code, exc.message) == (500, "failed side effect")
    assert S.ATTEMPTS[k] == 1


@scenario
async def test_s22_terminal_error_inside_run_keeps_its_metadata(t):
    md = {"key1": "value1", "key2": "value2"}
    exc = await fails(t.call("Failing", "terminallyFailingSideEffect",
                              {"errorMessage": "failed side effect", "metadata": md}, key=fresh()))
    assert (exc.message, exc.metadata) == ("failed side effect", md)


@scenario
async def test_s23_other_exceptions_are_retried_until_success(t):
    k = fresh()
    assert await t.call("Failing", "failingCallWithEventualSuccess", key=k, idempotency_key=fresh()) == 4
    assert S.ATTEMPTS[k] == 4


@scenario
async def test_s24_run_is_retried_until_it_succeeds(t):
    k = fresh()
    assert await t.call("Failing", "sideEffectSucceedsAfterGivenAttempts", 3, key=k) == 3
    assert S.ATTEMPTS[k] == 3


@scenario
async def test_s25_run_with_max_attempts_1_runs_once_then_fails_terminally(t):
    k = fresh()
    assert await t.call("Failing", "sideEffectFailsAfterGivenAttempts", 1, key=k) == 1


@scenario
async def test_s26_run_retries_exhausted_become_a_terminal_error(t):
    k = fresh()
    assert await t.call("Failing", "sideEffectFailsAfterGivenAttempts", 3, key=k) == 3


@scenario
async def test_s28_terminal_error_in_run_with_max_attempts_fails_the_call(t):
    k = fresh()
    exc = await fails(t.call("Failing", "terminalInRun", key=k))
    assert (exc.code, exc.message) == (500, "Simulated terminal error")
    assert S.ATTEMPTS[k] == 1


@scenario
async def test_s29_a_wrapped_terminal_error_is_still_terminal(t):
    k = fresh()
    exc = await fails(t.call("Failing", "wrappedTerminal", key=k))
    assert (exc.code, exc.message) == (500, "Simulated terminal error")
    assert S.ATTEMPTS[k] == 1


@scenario
async def test_s30_retryable_error_retry_after_overrides_the_policy_interval(t):
    k = fresh()  # the handler's policy waits 1 h between attempts; retry_after says 100 ms
    exc = await fails(t.call("Failing", "retryAfter", False, key=k))
    assert exc.message == "attempt 2" and S.ATTEMPTS[k] == 2


@scenario
async def test_s31_a_wrapped_retryable_error_is_still_honoured(t):
    k = fresh()
    exc = await fails(t.call("Failing", "retryAfter", True, key=k))
    assert exc.message == "attempt 2" and S.ATTEMPTS[k] == 2


# --------------------------------------------------------------------------------------------- E. sleeps and timers
def _program(*commands: dict) -> dict:
    return {"commands": list(commands)}


def _one(command: dict) -> dict:
    return {"type": "awaitOne", "command": command}


@scenario
async def test_s32_sleep_completes_no_earlier_than_its_duration(t):
    ms = int(t.delay.total_seconds() * 1000)
    sent = await t.send("Interpreter", "interpretCommands", _program(_one({"type": "sleep", "timeoutMillis": ms})),
                        key=fresh(), idempotency_key=fresh())
    await t.wait(t.delay / 2)
    try:
        await t.output(sent.invocation_id)
        raise AssertionError("the sleep ended early")
    except NotReady:
        pass
    await t.wait(t.delay / 2 + t.slack)
    await t.eventually_equal(lambda: _output_or_none(t, sent.invocation_id), "sleep", "output after the sleep")


async def _output_or_none(t, invocation_id: str):
    try:
        return await t.output(invocation_id)
    except NotReady:
        return None


@scenario
async def test_s33_many_concurrent_sleeps(t):
    rng = random.Random(33)
    top = int(t.delay.total_seconds() * 1000)
    keys = [fresh() for _ in range(10)]
    sent = await asyncio.gather(*[
        t.send("Interpreter", "interpretCommands", _program({"type": "awaitAllCompleted", "commands": [
            {"type": "sleep", "timeoutMillis": rng.randint(10, top)} for _ in range(5)]}), key=k) for k in keys])
    results = await asyncio.gather(*[t.attach(s.invocation_id) for s in sent])
    assert results == ["ok:sleep|ok:sleep|ok:sleep|ok:sleep|ok:sleep"] * 10
    assert [S.EVENTS[k] for k in keys] == [[results[0]]] * 10


async def _sleep_survives_a_service_crash(t, hard: bool) -> None:
    sleep, crash_at = t.delay * 16, t.delay * 3
    sent = await t.send("Sleeper", "sleep", int(sleep.total_seconds() * 1000), idempotency_key=fresh())
    started = t.clock()
    await t.wait(crash_at)
    await t.crash_service(hard)
    await t.until(lambda: _at_least(t.attempts(sent.invocation_id), 2), "a second attempt after the crash")
    not_yet = sleep.total_seconds() - (t.clock() - started) - (t.slack + t.delay / 10).total_seconds()
    if not_yet > 0:
        await t.wait(timedelta(seconds=not_yet))
        try:
            await t.output(sent.invocation_id)
            raise AssertionError("the sleep ended early")
        except NotReady:
            pass
    await t.eventually_equal(lambda: _output_or_none(t, sent.invocation_id), "sleep", "output after the sleep")
    took = t.clock() - started
    # the journaled sleep keeps its wake-up time: a timer restarted by the new attempt would end at
    # crash_at + sleep or later
    assert took < (sleep + crash_at * 3 / 4).total_seconds(), f"completed after {took:.2f} s"


async def _at_least(count: Awaitable[int], n: int) -> bool:
    return await count >= n


@scenario
async def test_s34_sleep_survives_the_service_being_killed_mid_sleep(t):
    await _sleep_survives_a_service_crash(t, hard=True)


@scenario
async def test_s34_sleep_survives_the_service_being_stopped_mid_sleep(t):
    await _sleep_survives_a_service_crash(t, hard=False)


@scenario
async def test_s35_awakeable_or_timeout_with_await_any_the_timeout_wins(t):
    ms = int(t.delay.total_seconds() * 1000)
    program = _program({"type": "awaitAny", "commands": [{"type": "createAwakeable", "awakeableKey": "awk1"},
                                                         {"type": "sleep", "timeoutMillis": ms}]})
    assert await t.call("Interpreter", "interpretCommands", program, key=fresh()) == "sleep"


@scenario
async def test_s36_awakeable_or_timeout_with_select_raises_on_timeout(t):
    ms = int(t.delay.total_seconds() * 1000)
    program = _program({"type": "awaitAwakeableOrTimeout", "awakeableKey": "should-timeout-awk", "timeoutMillis": ms})
    exc = await fails(t.call("Interpreter", "interpretCommands", program, key=fresh()))
    assert (exc.code, exc.message) == (500, "await-timeout")


# --------------------------------------------------------------------------------------------- F. awakeables
async def _has(t, k: str, name: str) -> bool:
    return await t.call("Interpreter", "hasAwakeable", name, key=k)


@scenario
async def test_s37_first_successful_among_awakeables_and_failing_runs(t):
    k = fresh()
    cmds = []
    for i in range(3):
        cmds += [{"type": "createAwakeable", "awakeableKey": f"awk{i}"},
                 {"type": "runThrowTerminalException", "reason": f"run{i}"}]
    sent = await t.send("Interpreter", "interpretCommands", _program({"type": "awaitAnySuccessful",
                                                                       "commands": cmds}), key=k)
    for name in ("awk2", "awk0", "awk1"):
        await t.until(lambda: _has(t, k, name), f"hasAwakeable({name})")  # noqa: B023 (awaited in this turn)
    await t.call("Interpreter", "rejectAwakeable", {"awakeableKey": "awk2", "reason": "fail"}, key=k)
    await t.call("Interpreter", "resolveAwakeable", {"awakeableKey": "awk1", "value": "awk1-result"}, key=k)
    assert await t.attach(sent.invocation_id) == "awk1-result"


@scenario
async def test_s38_awakeable_holder_pattern(t):
    k = fresh()
    exc = await fails(t.call("AwakeableHolder", "unlock", "x", key=k))
    assert exc.message == "No awakeable is registered"
    assert await t.call("AwakeableHolder", "hasAwakeable", key=k) is False
    await t.call("AwakeableHolder", "hold", "sign_1abc", key=k)
    assert await t.call("AwakeableHolder", "hasAwakeable", key=k) is True


async def _awakeable_id(t, k: str, name: str) -> str:
    async def read():
        return (await t.state("Interpreter", k)).get("awk-" + name)
    return await t.until(read, f"awakeable {name} created")


@scenario
async def test_s39_resolve_an_awakeable_from_the_ingress(t):
    k = fresh()
    sent = await t.send("Interpreter", "interpretCommands", _program(_one({"type": "createAwakeable",
                                                                          "awakeableKey": "a"})), key=k)
    await t.resolve_awakeable(await _awakeable_id(t, k, "a"), "solved!")
    assert await t.attach(sent.invocation_id) == "solved!"


@scenario
async def test_s40_reject_an_awakeable_from_the_ingress(t):
    k = fresh()
    sent = await t.send("Interpreter", "interpretCommands", _program(_one({"type": "createAwakeable",
                                                                          "awakeableKey": "a"})), key=k)
    await t.reject_awakeable(await _awakeable_id(t, k, "a"), "my bad!")
    exc = await fails(t.attach(sent.invocation_id))
    assert (exc.code, exc.message) == (500, "my bad!")


# --------------------------------------------------------------------------------------------- G. signals
def _sig(name: str) -> dict:
    return {"type": "createSignal", "signalName": name}


async def _signal_program(t, command: dict, signals: list[tuple[str, str, str]]) -> object:
    """Send the program, then resolve ('ok') or reject ('err') the named signals from another handler."""
    sent = await t.send("Interpreter", "interpretCommands", _program(command), key=fresh())
    for how, name, value in signals:
        req = {"invocationId": sent.invocation_id, "signalName": name}
        if how == "ok":
            await t.call("TestUtilsService", "resolveSignal", {**req, "value": value})
        else:
            await t.call("TestUtilsService", "rejectSignal", {**req, "reason": value})
    return await t.attach(sent.invocation_id)


@scenario
async def test_s41_resolve_a_signal(t):
    assert await _signal_program(t, _one(_sig("mysignal")), [("ok", "mysignal", "hello")]) == "hello"


@scenario
async def test_s42_reject_a_signal(t):
    exc = await fails(_signal_program(t, _one(_sig("mysignal")), [("err", "mysignal", "boom")]))
    assert exc.message == "boom"


SIGS = [_sig("sig0"), _sig("sig1"), _sig("sig2")]


@scenario
async def test_s43_signal_first_successful_or_all_failed(t):
    assert await _signal_program(t, {"type": "awaitAnySuccessful", "commands": SIGS},
                                 [("err", "sig0", "fail0"), ("err", "sig2", "fail2"),
                                  ("ok", "sig1", "success1")]) == "success1"


@scenario
async def test_s44_signal_all_successful_or_first_failed(t):
    assert await _signal_program(t, {"type": "awaitAllSucceededOrFirstFailed", "commands": SIGS},
                                 [("ok", "sig0", "val0"), ("ok", "sig1", "val1"),
                                  ("ok", "sig2", "val2")]) == "val0|val1|val2"


@scenario
async def test_s45_signal_all_completed(t):
    assert await _signal_program(t, {"type": "awaitAllCompleted", "commands": SIGS},
                                 [("ok", "sig0", "val0"), ("err", "sig1", "err1"),
                                  ("ok", "sig2", "val2")]) == "ok:val0|err:err1|ok:val2"


@scenario
async def test_s46_signal_first_completed(t):
    assert await _signal_program(t, {"type": "awaitAny", "commands": SIGS}, [("ok", "sig1", "first")]) == "first"


@scenario
async def test_s47_a_run_wins_the_race_against_a_signal(t):
    program = _program({"type": "awaitFirstCompleted", "commands": [_sig("sig"),
                                                                    {"type": "runReturns", "value": "runval"}]})
    assert await t.call("Interpreter", "interpretCommands", program, key=fresh()) == "runval"


@scenario
async def test_s48_a_signal_wins_after_the_run_fails(t):
    assert await _signal_program(t, {"type": "awaitFirstSucceededOrAllFailed", "commands": [
        {"type": "runThrowTerminalException", "reason": "fail"}, _sig("sig")]},
        [("ok", "sig", "sigval")]) == "sigval"


@scenario
async def test_s49_all_succeeded_run_and_signal(t):
    assert await _signal_program(t, {"type": "awaitAllSucceededOrFirstFailed", "commands": [
        {"type": "runReturns", "value": "runval"}, _sig("sig")]}, [("ok", "sig", "sigval")]) == "runval|sigval"


@scenario
async def test_s50_all_completed_run_signal_and_failed_run(t):
    assert await _signal_program(t, {"type": "awaitAllCompleted", "commands": [
        {"type": "runReturns", "value": "runval"}, _sig("sig"), {"type": "runThrowTerminalException",
                                                                  "reason": "fail"}]},
        [("ok", "sig", "sigval")]) == "ok:runval|ok:sigval|err:fail"
