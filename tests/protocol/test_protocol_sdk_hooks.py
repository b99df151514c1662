"""sdk_hooks: exact sleep/send delays recorded per attempt, and quiet SDK logs inside attempts."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import restate
from restate.vm import VMWrapper

from playground.protocol import driver, framing, messages, sdk_hooks
from playground.protocol.driver import Attempt

from protocol_testkit import (
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
)

HOUR_MS = 3_600_000
SDK_LOGGERS = {"restate.server", "restate.server_context"}

svc = restate.Service("Hooks")


@svc.handler()
async def target(ctx: restate.Context, name: str) -> str:
    return name


@svc.handler()
async def nap(ctx: restate.Context, hours: int) -> str:
    await ctx.sleep(timedelta(hours=hours))
    return "rested"


@svc.handler()
async def two_naps(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(hours=5))
    await ctx.sleep(timedelta(minutes=3))
    return "twice"


@svc.handler()
async def delayed_send(ctx: restate.Context) -> str:
    ctx.service_send(target, "later", send_delay=timedelta(seconds=30))
    return "sent"


@svc.handler()
async def immediate_send(ctx: restate.Context) -> str:
    ctx.service_send(target, "now")
    return "sent"


@svc.handler()
async def explode(ctx: restate.Context) -> str:
    raise ValueError("hooked boom")


APP = make_app(svc)


@pytest.fixture(autouse=True)
def _hooks_installed() -> None:
    assert sdk_hooks.install() is True


def _sleep_cmd(cid: int, wake_up_time: int) -> bytes:
    return framing.encode(messages.new("Sleep", wake_up_time=wake_up_time, result_completion_id=cid))


def _sleep_done(cid: int) -> bytes:
    return framing.encode(messages.new("SleepCompletion", completion_id=cid, void=messages.new("Void")))


async def _complete_sleeps(attempt: Attempt, count: int) -> list[Any]:
    """Answer `count` Sleep commands as they arrive, then collect up to the end of the attempt."""
    items: list[Any] = []
    for _ in range(count):
        got = await pump_until(attempt, is_named("Sleep"))
        items += got
        cid = received(got, "Sleep")[0].result_completion_id
        attempt.notify(messages.new("SleepCompletion", completion_id=cid, void=messages.new("Void")))
    items += await pump_until(attempt, is_named("End", "Error"))
    items += await finish(attempt)
    return items


def test_install_is_idempotent_and_wraps_once() -> None:
    assert sdk_hooks.install() is True
    assert sdk_hooks.install() is True
    wrapped_sleep = VMWrapper.sys_sleep.__wrapped__
    wrapped_send = VMWrapper.sys_send.__wrapped__
    assert not hasattr(wrapped_sleep, "__wrapped__"), "sys_sleep was wrapped more than once"
    assert not hasattr(wrapped_send, "__wrapped__"), "sys_send was wrapped more than once"


async def test_sleep_inside_an_attempt_records_its_exact_millis() -> None:
    attempt = open_attempt(APP, "Hooks", "nap")
    try:
        attempt.start(start_msg(), [input_frame(b"5")])
        items = await _complete_sleeps(attempt, 1)
    finally:
        await ensure_ended(attempt)
    assert list(attempt.delays) == [("sleep", 18_000_000)]
    assert received(items, "Output")[0].value.content == b'"rested"'


async def test_delayed_send_records_its_exact_millis() -> None:
    attempt = open_attempt(APP, "Hooks", "delayed_send")
    try:
        before = int(time.time() * 1000)
        attempt.start(start_msg(), [input_frame()])
        items = await pump_until(attempt, is_named("End"))
        after = int(time.time() * 1000)
        items = items + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    assert list(attempt.delays) == [("send", 30_000)]
    # The hook only observes: the SDK still computes the absolute invoke time itself.
    one_way = received(items, "OneWayCall")[0]
    assert (one_way.service_name, one_way.handler_name, one_way.parameter) == ("Hooks", "target", b'"later"')
    assert before + 30_000 <= one_way.invoke_time <= after + 30_000


async def test_send_without_delay_records_zero() -> None:
    attempt = open_attempt(APP, "Hooks", "immediate_send")
    try:
        attempt.start(start_msg(), [input_frame()])
        await pump_until(attempt, is_named("End"))
        await finish(attempt)
        result = attempt
    finally:
        await ensure_ended(attempt)
    assert list(result.delays) == [("send", 0)]


async def test_concurrent_attempts_record_only_their_own_delays() -> None:
    short = open_attempt(APP, "Hooks", "nap")
    long = open_attempt(APP, "Hooks", "nap")
    try:
        short.start(start_msg(), [input_frame(b"1")])
        long.start(start_msg(), [input_frame(b"7")])
        await asyncio.gather(_complete_sleeps(short, 1), _complete_sleeps(long, 1))
    finally:
        await ensure_ended(short)
        await ensure_ended(long)
    assert list(short.delays) == [("sleep", 1 * HOUR_MS)]
    assert list(long.delays) == [("sleep", 7 * HOUR_MS)]


async def test_replayed_sleep_is_not_recorded_but_a_new_one_after_it_is() -> None:
    journal = [input_frame(), _sleep_cmd(1, 1), _sleep_done(1)]

    attempt = open_attempt(APP, "Hooks", "two_naps")
    try:
        attempt.start(start_msg(), journal)
        items = await _complete_sleeps(attempt, 1)
    finally:
        await ensure_ended(attempt)
    assert list(attempt.delays) == [("sleep", 3 * 60_000)]
    assert len(received(items, "Sleep")) == 1  # only the new sleep went on the wire
    assert received(items, "Output")[0].value.content == b'"twice"'


async def test_replayed_sleep_still_awaiting_its_completion_is_not_recorded() -> None:
    journal = [input_frame(b"5"), _sleep_cmd(1, 1)]

    attempt = open_attempt(APP, "Hooks", "nap")
    try:
        attempt.start(start_msg(), journal)
        waiting = await pump(attempt)
        attempt.notify(messages.new("SleepCompletion", completion_id=1, void=messages.new("Void")))
        done = await pump_until(attempt, is_named("End")) + await finish(attempt)
        items = waiting + done
    finally:
        await ensure_ended(attempt)
    assert list(attempt.delays) == []
    assert "Sleep" not in names(items)
    assert received(items, "Output")[0].value.content == b'"rested"'


async def test_hooks_outside_an_attempt_record_nothing_and_still_delegate() -> None:
    """Drive the app with bare ASGI callables (no Attempt, so no current attempt): the SDK behaves as usual."""
    bystander = Attempt(APP, "Hooks", "nap")  # never started; must stay untouched
    sent: list[dict] = []

    body = framing.encode(start_msg(known_entries=1)) + input_frame(b"5")
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": body, "more_body": True})
    finished = asyncio.Event()

    async def receive() -> dict:
        if inbox.empty() and finished.is_set():
            return {"type": "http.disconnect"}
        return await inbox.get()

    async def send(event: dict) -> None:
        sent.append(event)
        if event["type"] == "http.response.body" and not event.get("more_body", False):
            finished.set()

    scope = {"type": "http", "http_version": "2", "path": "/invoke/Hooks/nap",
             "headers": [(b"content-type", driver.CONTENT_TYPE.encode())]}
    assert driver.current_attempt.get() is None
    before = int(time.time() * 1000)
    task = asyncio.create_task(APP(scope, receive, send))
    for _ in range(500):  # until the SDK flushes its first frames (the Sleep command)
        if any(e["type"] == "http.response.body" and e.get("body") for e in sent):
            break
        await asyncio.sleep(0)
    after = int(time.time() * 1000)
    # Cancel the sleep (virtual or not, we are not going to wait 5 h) and close the body.
    inbox.put_nowait({"type": "http.request", "body": framing.encode(
        messages.new("Signal", idx=messages.CANCEL_SIGNAL, void=messages.new("Void"))), "more_body": True})
    inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    for _ in range(1000):
        if task.done():
            break
        await asyncio.sleep(0)
    assert task.done()
    stream = b"".join(e.get("body", b"") for e in sent if e["type"] == "http.response.body")
    decoded = framing.Decoder().feed(stream)
    sleep = next(messages.parse(t, p) for t, _, p in decoded if t == messages.TYPE_IDS["Sleep"])
    assert before + 5 * HOUR_MS <= sleep.wake_up_time <= after + 5 * HOUR_MS
    assert list(bystander.delays) == []


class _FakeVM:
    def __init__(self, replaying: bool | Exception) -> None:
        self._replaying = replaying

    def is_replaying(self) -> bool:
        if isinstance(self._replaying, Exception):
            raise self._replaying
        return self._replaying


def test_record_appends_only_inside_an_attempt_and_only_when_not_replaying() -> None:
    attempt = open_attempt(APP, "Hooks", "nap")

    sdk_hooks._record(_FakeVM(False), "sleep", 5)  # no current attempt: dropped
    assert list(attempt.delays) == []

    token = driver.current_attempt.set(attempt)
    try:
        sdk_hooks._record(_FakeVM(True), "sleep", 6)  # replaying: dropped
        sdk_hooks._record(_FakeVM(False), "sleep", 7.9)
        sdk_hooks._record(_FakeVM(RuntimeError("vm gone")), "send", 8)  # observation never breaks the SDK
    finally:
        driver.current_attempt.reset(token)
    assert list(attempt.delays) == [("sleep", 7), ("send", 8)]


async def test_handler_exceptions_inside_attempts_are_not_logged_but_still_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    attempt = open_attempt(APP, "Hooks", "explode")
    try:
        attempt.start(start_msg(), [input_frame()])
        items = await pump_until(attempt, is_named("End", "Error", "Suspension")) + await finish(attempt)
    finally:
        await ensure_ended(attempt)
    error = received(items, "Error")[0]
    assert error.code == 500
    assert repr(ValueError("hooked boom")) in error.message
    assert [r for r in caplog.records if r.name in SDK_LOGGERS] == []

    # The same loggers do reach caplog outside an attempt, so the assertion above is meaningful.
    logging.getLogger("restate.server").error("outside any attempt")
    assert [r.getMessage() for r in caplog.records if r.name in SDK_LOGGERS] == ["outside any attempt"]


async def test_unsupported_version_inside_an_attempt_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    attempt = open_attempt(APP, "Hooks", "target", content_type="application/vnd.restate.invocation.v4")
    try:
        attempt.start(start_msg(), [input_frame(b'"x"')])
        ended = (await pump_until(attempt, is_ended))[-1]
    finally:
        await ensure_ended(attempt)
    assert ended is not None and ended.error is not None
    assert [r for r in caplog.records if r.name.startswith("restate")] == []
