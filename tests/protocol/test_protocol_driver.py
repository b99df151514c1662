"""Attempt, the in-process driver of one invocation attempt, against the real SDK ASGI app (protocol V7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import restate
from restate.exceptions import RetryableError

from playground.protocol import driver, framing, messages
from playground.protocol.driver import Attempt, AttemptEnded, Received

from protocol_testkit import (
    DEBUG_ID,
    command,
    ensure_ended,
    finish,
    input_frame,
    is_ended,
    is_named,
    make_app,
    names,
    open_attempt,
    pump,
    pump_until,
    received,
    start_msg,
    value,
)

TERMINALS = {"End", "Suspension", "Error"}

svc = restate.Service("Proto")
seen_attempts: list[Any] = []


@svc.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"hi {name}"


@svc.handler()
async def whoami(ctx: restate.Context) -> str:
    seen_attempts.append(driver.current_attempt.get())
    return ctx.request().id


@svc.handler()
async def sleeper(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(hours=5))
    return "woke"


@svc.handler()
async def caller(ctx: restate.Context, name: str) -> str:
    return await ctx.service_call(greet, name)


@svc.handler()
async def idempotent_caller(ctx: restate.Context, name: str) -> str:
    return await ctx.service_call(greet, name, idempotency_key="idem-1")


@svc.handler()
async def boom(ctx: restate.Context) -> str:
    raise ValueError("plain boom")


@svc.handler()
async def teapot(ctx: restate.Context) -> str:
    raise restate.TerminalError("short and stout", 418)


@svc.handler()
async def retry_later(ctx: restate.Context) -> str:
    raise RetryableError("not yet", retry_after=timedelta(seconds=7))


counter = restate.VirtualObject("Counter")


@counter.handler()
async def peek(ctx: restate.ObjectContext) -> str:
    count = await ctx.get("count")
    return f"{ctx.key()}:{count}"


APP = make_app(svc, counter)


def _runner_app(executions: list[str]) -> Any:
    """A fresh service whose ctx.run closure records each execution in `executions`."""
    runs = restate.Service("Runs")

    @runs.handler()
    async def once(ctx: restate.Context) -> str:
        async def work() -> str:
            executions.append("work")
            return "fresh"

        return await ctx.run("work", work)

    return make_app(runs)


# --- lifecycle ---------------------------------------------------------------------------------------------


async def test_trivial_handler_sends_output_and_end_then_ends_after_close() -> None:
    attempt = open_attempt(APP, "Proto", "greet")
    try:
        attempt.start(start_msg(), [input_frame(b'"bob"')])
        items = await pump_until(attempt, is_named("End"))
        items += await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert names(items) == ["Output", "End", "AttemptEnded"]
    assert received(items, "Output")[0].value.content == b'"hi bob"'
    ended = items[-1]
    assert isinstance(ended, AttemptEnded)
    assert ended.status == 200 and ended.error is None
    assert ended.headers["content-type"] == driver.CONTENT_TYPE == "application/vnd.restate.invocation.v7"
    assert ended.headers["x-restate-server"].startswith("restate-sdk-python/")


async def test_app_does_not_return_until_the_request_body_is_closed() -> None:
    """Pitfall P1: after End the SDK waits for the server to close its input before it returns."""

    attempt = open_attempt(APP, "Proto", "greet")
    try:
        attempt.start(start_msg(), [input_frame(b'"ann"')])
        before = await pump(attempt, rounds=1000)
        assert names(before) == ["Output", "End"]
        assert attempt.ended is None
        assert not attempt.input_closed
        assert attempt._task is not None and not attempt._task.done()

        attempt.close_input()
        assert attempt.input_closed
        after = await pump_until(attempt, is_ended)
        assert names(after) == ["AttemptEnded"]
        assert attempt.ended is after[-1]
        assert attempt.ended.status == 200 and attempt.ended.error is None
        await attempt._task  # the app's task, too, has finished
        assert attempt._task.done()
    finally:
        await ensure_ended(attempt)


async def test_start_sets_known_entries_to_the_journal_length() -> None:
    attempt = open_attempt(APP, "Proto", "greet")
    start = start_msg(known_entries=99)
    try:
        attempt.start(start, [input_frame(b'"x"')])
        await pump_until(attempt, is_named("End"))
        await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert start.known_entries == 1


async def test_notify_is_refused_once_the_input_is_closed() -> None:
    attempt = open_attempt(APP, "Proto", "greet")
    try:
        attempt.start(start_msg(), [input_frame(b'"x"')])
        await pump_until(attempt, is_named("End"))
        before = attempt.notify(messages.new("ProposeRunCompletionAck", completion_id=1))
        await finish(attempt)
        after = attempt.notify(messages.new("ProposeRunCompletionAck", completion_id=1))
        result = before, after
    finally:
        await ensure_ended(attempt)
    assert result == (True, False)


async def test_start_fields_reach_the_handler_and_current_attempt_is_set_inside_it() -> None:
    seen_attempts.clear()

    attempt = open_attempt(APP, "Proto", "whoami")
    try:
        attempt.start(start_msg(), [input_frame()])
        items = await pump_until(attempt, is_named("End"))
        await finish(attempt)
        outside = driver.current_attempt.get()
    finally:
        await ensure_ended(attempt)
    assert received(items, "Output")[0].value.content == f'"{DEBUG_ID}"'.encode()
    assert seen_attempts == [attempt]
    assert outside is None


async def test_object_key_and_eager_state_come_from_start() -> None:
    attempt = open_attempt(APP, "Counter", "peek")
    start = start_msg(key="k1", partial_state=False,
                      state_map=[messages.new("StateEntry", key=b"count", value=b"41")])
    try:
        attempt.start(start, [input_frame()])
        items = await pump_until(attempt, is_named("End")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert names(items) == ["GetEagerState", "Output", "End", "AttemptEnded"]
    eager = received(items, "GetEagerState")[0]
    assert eager.key == b"count"
    assert eager.WhichOneof("result") == "value" and eager.value.content == b"41"
    assert received(items, "Output")[0].value.content == b'"k1:41"'


async def test_concurrent_attempts_on_one_loop_keep_their_streams_apart() -> None:
    first = open_attempt(APP, "Proto", "greet")
    second = open_attempt(APP, "Proto", "greet")
    try:
        first.start(start_msg(), [input_frame(b'"one"')])
        second.start(start_msg(), [input_frame(b'"two"')])
        a = await pump_until(first, is_named("End"))
        b = await pump_until(second, is_named("End"))
        a += await finish(first)
        b += await finish(second)
    finally:
        await ensure_ended(first)
        await ensure_ended(second)
    assert received(a, "Output")[0].value.content == b'"hi one"'
    assert received(b, "Output")[0].value.content == b'"hi two"'
    assert names(a) == names(b) == ["Output", "End", "AttemptEnded"]


# --- protocol versions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4, 9])
async def test_unsupported_protocol_version_surfaces_as_an_ended_attempt_with_error(version: int) -> None:
    """Pitfall P5: the app raises instead of answering; the driver must report it rather than hang."""

    attempt = open_attempt(APP, "Proto", "greet", content_type=f"application/vnd.restate.invocation.v{version}")
    try:
        attempt.start(start_msg(), [input_frame(b'"x"')])
        items = await pump_until(attempt, is_ended)
    finally:
        await ensure_ended(attempt)
    assert names(items) == ["AttemptEnded"]
    ended = items[0]
    assert isinstance(ended, AttemptEnded)
    assert ended.error is not None
    assert "415" in str(ended.error)
    assert f"v{version}" in str(ended.error).lower()
    assert ended.status is None  # no response head was ever sent


@pytest.mark.parametrize("version", [5, 6, 7, 8])
async def test_supported_protocol_versions_complete_a_trivial_handler(version: int) -> None:
    content_type = f"application/vnd.restate.invocation.v{version}"

    attempt = open_attempt(APP, "Proto", "greet", content_type=content_type)
    try:
        attempt.start(start_msg(), [input_frame(b'"v"')])
        items = await pump_until(attempt, is_named("End")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert names(items) == ["Output", "End", "AttemptEnded"]
    assert items[-1].error is None
    assert items[-1].headers["content-type"] == content_type


# --- abort -------------------------------------------------------------------------------------------------


async def test_abort_mid_handler_ends_the_attempt_without_a_terminal_message() -> None:
    """Pitfall P2: a dropped connection while the handler waits loses the attempt: no End/Error/Suspension."""

    attempt = open_attempt(APP, "Proto", "sleeper")
    try:
        attempt.start(start_msg(), [input_frame()])
        before = await pump_until(attempt, is_named("Sleep"))
        before += await pump(attempt)  # the handler is now parked on a completion we never send
        assert attempt.ended is None
        attempt.abort()
        after = await pump_until(attempt, is_ended)
    finally:
        await ensure_ended(attempt)
    everything = names(before + after)
    assert "Sleep" in everything
    assert not TERMINALS & set(everything)
    assert "Output" not in everything
    assert everything[-1] == "AttemptEnded" and everything.count("AttemptEnded") == 1
    assert attempt.ended is after[-1]
    assert attempt.input_closed
    assert attempt.notify(messages.new("SleepCompletion", completion_id=1)) is False


async def test_abort_after_the_terminal_message_reports_a_connection_abort() -> None:
    """Cancelled while the SDK waits for the input to close (outside user code), the app task itself ends
    cancelled; the driver turns that into an error instead of losing the attempt."""

    attempt = open_attempt(APP, "Proto", "greet")
    try:
        attempt.start(start_msg(), [input_frame(b'"x"')])
        before = await pump_until(attempt, is_named("End"))
        before += await pump(attempt)
        attempt.abort()
        after = await pump_until(attempt, is_ended)
    finally:
        await ensure_ended(attempt)
    assert names(before) == ["Output", "End"]
    assert names(after) == ["AttemptEnded"]
    assert isinstance(after[0].error, ConnectionAbortedError)


# --- commands and notifications -----------------------------------------------------------------------------


async def test_sleep_completes_when_the_completion_is_sent() -> None:
    attempt = open_attempt(APP, "Proto", "sleeper")
    try:
        attempt.start(start_msg(), [input_frame()])
        first = await pump_until(attempt, is_named("Sleep"))
        first += await pump(attempt)
        cid = received(first, "Sleep")[0].result_completion_id
        attempt.notify(messages.new("SleepCompletion", completion_id=cid, void=messages.new("Void")))
        second = await pump_until(attempt, is_named("End")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert not {"Output", "End"} & set(names(first))
    assert received(second, "Output")[0].value.content == b'"woke"'
    assert names(second)[-2:] == ["End", "AttemptEnded"]


async def test_cancel_signal_fails_the_pending_await_with_409() -> None:
    attempt = open_attempt(APP, "Proto", "sleeper")
    try:
        attempt.start(start_msg(), [input_frame()])
        await pump_until(attempt, is_named("Sleep"))
        attempt.notify(messages.new("Signal", idx=messages.CANCEL_SIGNAL, void=messages.new("Void")))
        items = await pump_until(attempt, is_named("End")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    output = received(items, "Output")[0]
    assert output.WhichOneof("result") == "failure"
    assert output.failure.code == 409


async def test_run_proposal_requests_an_ack_and_the_handler_finishes_after_the_ack() -> None:
    executions: list[str] = []
    app = _runner_app(executions)

    attempt = open_attempt(app, "Runs", "once")
    try:
        attempt.start(start_msg(), [input_frame()])
        proposal = await pump_until(attempt, is_named("ProposeRunCompletion"))
        waiting = await pump(attempt, rounds=500)  # without the ack the handler must not finish
        cid = received(proposal, "ProposeRunCompletion")[0].result_completion_id
        attempt.notify(messages.new("ProposeRunCompletionAck", completion_id=cid))
        done = await pump_until(attempt, is_named("End")) + await finish(attempt)
        proposal = [i for i in proposal if isinstance(i, Received)]
    finally:
        await ensure_ended(attempt)
    run_cmd = next(i for i in proposal if i.name == "Run")
    propose = next(i for i in proposal if i.name == "ProposeRunCompletion")
    assert run_cmd.flags == 0
    assert run_cmd.msg.name == "work"
    assert propose.flags & framing.REQUESTED_ACK
    assert propose.msg.result_completion_id == run_cmd.msg.result_completion_id
    assert propose.msg.WhichOneof("result") == "value" and propose.msg.value == b'"fresh"'
    assert not {"Output", "End", "AttemptEnded"} & set(names(waiting))
    assert received(done, "Output")[0].value.content == b'"fresh"'
    assert names(done)[-2:] == ["End", "AttemptEnded"]
    assert executions == ["work"]


async def _run_to_end(app: Any, service: str, handler: str, journal: list[bytes] | None = None) -> list[Any]:
    """Start an attempt with `journal` (default: just the Input), read until its terminal message, close the
    body and return every item received, the AttemptEnded last."""
    attempt = open_attempt(app, service, handler)
    try:
        attempt.start(start_msg(), journal if journal is not None else [input_frame()])
        return await pump_until(attempt, is_named(*TERMINALS)) + await finish(attempt)
    finally:
        await ensure_ended(attempt)


async def _replay_stored_run(completion: Any) -> tuple[list[str], list[Any]]:
    """Run the `once` handler against a journal whose run already completed with `completion`."""
    executions: list[str] = []
    app = _runner_app(executions)
    journal = [
        input_frame(),
        framing.encode(command("Run", result_completion_id=1, name="work")),
        framing.encode(completion),
    ]

    return executions, await _run_to_end(app, "Runs", "once", journal)


async def test_replayed_run_is_not_executed_again_and_returns_the_stored_value() -> None:
    stored = messages.new("RunCompletion", completion_id=1, value=value(b'"stored"'))
    executions, items = await _replay_stored_run(stored)
    assert executions == []
    assert names(items) == ["Output", "End", "AttemptEnded"]  # no Run / ProposeRunCompletion sent again
    assert received(items, "Output")[0].value.content == b'"stored"'


async def test_replayed_failed_run_raises_a_terminal_error_in_the_handler() -> None:
    failure = messages.new("Failure", code=418, message="stored failure")
    executions, items = await _replay_stored_run(messages.new("RunCompletion", completion_id=1, failure=failure))
    assert executions == []
    output = received(items, "Output")[0]
    assert output.WhichOneof("result") == "failure"
    assert (output.failure.code, output.failure.message) == (418, "stored failure")


@pytest.mark.parametrize(("handler", "has_key"), [("caller", False), ("idempotent_caller", True)])
async def test_call_carries_both_notification_ids_and_completes_with_the_call_result(handler: str,
                                                                                    has_key: bool) -> None:
    attempt = open_attempt(APP, "Proto", handler)
    try:
        attempt.start(start_msg(), [input_frame(b'"bob"')])
        call = received(await pump_until(attempt, is_named("Call")), "Call")[0]
        attempt.notify(messages.new("CallInvocationIdCompletion",
                                    completion_id=call.invocation_id_notification_idx,
                                    invocation_id="inv_callee"))
        attempt.notify(messages.new("CallCompletion", completion_id=call.result_completion_id,
                                    value=value(b'"hi bob"')))
        items = await pump_until(attempt, is_named("End")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert (call.service_name, call.handler_name, call.parameter) == ("Proto", "greet", b'"bob"')
    assert call.invocation_id_notification_idx > 0 and call.result_completion_id > 0
    assert call.invocation_id_notification_idx != call.result_completion_id
    assert call.HasField("idempotency_key") is has_key
    if has_key:
        assert call.idempotency_key == "idem-1"
    assert received(items, "Output")[0].value.content == b'"hi bob"'


# --- failures ----------------------------------------------------------------------------------------------


async def test_plain_exception_becomes_error_500_without_retry_delay() -> None:
    items = await _run_to_end(APP, "Proto", "boom")
    assert names(items) == ["Error", "AttemptEnded"]
    error = received(items, "Error")[0]
    assert error.code == 500
    assert "ValueError('plain boom')" in error.message
    assert "plain boom" in error.stacktrace
    assert not error.HasField("next_retry_delay")
    assert items[-1].error is None and items[-1].status == 200  # P3: 200 although the attempt failed


async def test_retryable_error_carries_next_retry_delay_in_ms() -> None:
    error = received(await _run_to_end(APP, "Proto", "retry_later"), "Error")[0]
    assert error.HasField("next_retry_delay") and error.next_retry_delay == 7000


async def test_terminal_error_becomes_a_failed_output_and_end() -> None:
    items = await _run_to_end(APP, "Proto", "teapot")
    assert names(items) == ["Output", "End", "AttemptEnded"]
    output = received(items, "Output")[0]
    assert output.WhichOneof("result") == "failure"
    assert (output.failure.code, output.failure.message) == (418, "short and stout")


def test_received_name_falls_back_to_hex_for_unknown_ids() -> None:
    assert Received(0x040D, 0, None).name == "Call"
    assert Received(0x0499, 0, None).name == "0x499"


def test_received_parses_its_payload_once_when_the_message_is_first_read() -> None:
    payload = messages.new("CommandAck", command_index=3).SerializeToString()
    item = Received(messages.TYPE_IDS["CommandAck"], 0, None, payload)
    first = item.msg
    assert first.command_index == 3
    assert item.msg is first


def test_received_frame_is_the_sdks_own_bytes_with_flags_cleared_whether_or_not_it_was_parsed() -> None:
    payload = messages.new("SetState", key=b"k", value=messages.new("Value", content=b"1")).SerializeToString()
    type_id = messages.TYPE_IDS["SetState"]
    item = Received(type_id, framing.REQUESTED_ACK, None, payload)
    assert item.frame() == framing.encode_raw(type_id, payload)
    assert item.msg.key == b"k"
    assert item.frame() == framing.encode_raw(type_id, payload)  # (reading the message keeps the payload)
    given = Received(type_id, 0, messages.new("SetState", key=b"k"))
    assert given.frame() == framing.encode(messages.new("SetState", key=b"k"))


def test_received_keeps_a_message_given_to_it() -> None:
    msg = messages.new("End")
    assert Received(messages.TYPE_IDS["End"], 0, msg).msg is msg


# --- the driver against small fake apps ---------------------------------------------------------------------


async def test_app_raising_after_the_response_head_reports_status_and_error() -> None:
    """Like pitfall P4: a 200 head followed by an exception still ends the attempt, with both recorded."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x")]})
        await receive()
        raise RuntimeError("(571) input closed while replaying")

    attempt = open_attempt(app, "Fake", "h")
    try:
        attempt.start(start_msg(), [input_frame()])
        items = await pump_until(attempt, is_ended)
    finally:
        await ensure_ended(attempt)
    assert names(items) == ["AttemptEnded"]
    ended = items[0]
    assert ended.status == 200 and ended.headers == {"content-type": "x"}
    assert isinstance(ended.error, RuntimeError) and "571" in str(ended.error)


async def test_fake_app_sees_start_and_journal_in_one_body_event_then_the_close() -> None:
    events: list[dict] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        events.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            event = await receive()
            events.append(event)
            if event["type"] != "http.request" or not event.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": framing.encode(messages.new("End")), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        events.append(await receive())

    attempt = open_attempt(app, "Fake", "h", headers=[("x-extra", "1")])
    try:
        attempt.start(start_msg(), [input_frame(b"1"), input_frame(b"2")])
        await pump(attempt, rounds=20)
        attempt.close_input()
        items = await pump_until(attempt, is_ended)
    finally:
        await ensure_ended(attempt)
    assert names(items) == ["End", "AttemptEnded"]
    scope, first, close, after = events
    assert scope["type"] == "http" and scope["path"] == "/invoke/Fake/h"
    assert (b"x-extra", b"1") in scope["headers"]
    assert first["more_body"] is True
    decoded = framing.Decoder().feed(first["body"])
    assert [t for t, _, _ in decoded] == [0x0000, 0x0400, 0x0400]
    assert messages.parse(0x0000, decoded[0][2]).known_entries == 2
    assert close == {"type": "http.request", "body": b"", "more_body": False}
    assert after == {"type": "http.disconnect"}  # only once the response is complete


async def test_a_frame_of_unknown_type_from_the_app_ends_the_attempt_with_an_error() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": framing.encode_raw(0x0499, b""), "more_body": True})

    attempt = open_attempt(app, "Fake", "h")
    try:
        attempt.start(start_msg(), [input_frame()])
        items = await pump_until(attempt, is_ended)
    finally:
        await ensure_ended(attempt)
    assert names(items) == ["AttemptEnded"]
    assert items[0].error is not None


async def test_an_attempt_refuses_to_start_before_it_has_somewhere_to_send_what_the_sdk_says() -> None:
    attempt = Attempt(APP, "Proto", "greet")
    with pytest.raises(ValueError, match="set the attempt's on_message and on_end before start"):
        attempt.start(start_msg(), [input_frame(b'"x"')])
    assert attempt.ended is None and attempt._task is None  # nothing was started


async def test_abort_right_after_start_still_reports_attempt_ended() -> None:
    attempt = open_attempt(APP, "Proto", "greet")
    attempt.start(start_msg(), [input_frame(b'"x"')])
    attempt.abort()
    items = await pump_until(attempt, is_ended)
    assert names(items)[-1] == "AttemptEnded"
