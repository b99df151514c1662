"""Interrupts and misbehaving handlers: KeyboardInterrupt, SystemExit and CancelledError raised in handler code,
a real SIGINT while a handler spins, an ingress await that is cancelled, and the tasks left behind after that.

KeyboardInterrupt is always caught inside the coroutine under test: one escaping a task would stop the event
loop, and pytest with it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
import restate

import playground as pg

rude = restate.Service("Rude")
fixed: list[bool] = []  # once it holds True, the handlers behave


@rude.handler()
async def interrupts(ctx: restate.Context) -> str:
    await ctx.run_typed("before", lambda: "stored")
    if not fixed:
        raise KeyboardInterrupt
    return "fixed"


async def _interrupting_step() -> str:
    raise KeyboardInterrupt


@rude.handler()
async def interrupts_in_run(ctx: restate.Context) -> str:
    return await ctx.run_typed("step", _interrupting_step)


@rude.handler()
async def exits_once(ctx: restate.Context) -> str:
    if not fixed:
        fixed.append(True)
        raise SystemExit(3)
    return "back"


@rude.handler()
async def cancels_once(ctx: restate.Context) -> str:
    if not fixed:
        fixed.append(True)
        gone = asyncio.get_running_loop().create_future()
        gone.cancel()
        await gone  # a future the handler awaited was cancelled: CancelledError out of handler code
    return "back"


@rude.handler()
async def calls_interrupts(ctx: restate.Context) -> str:
    return await ctx.service_call(interrupts, arg=None)


@rude.handler()
async def sleeps(ctx: restate.Context, minutes: int) -> str:
    await ctx.sleep(timedelta(minutes=minutes))
    return "slept"


handlers_seen: list[object] = []


@rude.handler()
async def peeks(ctx: restate.Context) -> str:
    handlers_seen.append(signal.getsignal(signal.SIGINT))
    return "peeked"


held = restate.VirtualObject("Held")


@held.handler()
async def nap(ctx: restate.ObjectContext, seconds: float) -> str:
    await ctx.sleep(timedelta(seconds=seconds))
    return "rested"


@pytest.fixture(autouse=True)
def _misbehave() -> None:
    fixed.clear()


async def _interrupt_of(awaitable: object) -> KeyboardInterrupt | None:
    try:
        await awaitable  # type: ignore[misc]
    except KeyboardInterrupt as exc:
        return exc
    return None


def _only(rt: pg.Runtime, target: str) -> str:
    return rt.invocations().query("target == @target").id.iloc[0]


# ------------------------------------------------------------------------------ item 4: BaseExceptions


async def test_keyboard_interrupt_in_handler_code_reaches_the_await_records_the_attempt_and_pauses() -> None:
    rt = pg.Runtime(rude)
    exc = await _interrupt_of(rt.service_call(interrupts))
    inv_id = _only(rt, "Rude/interrupts")
    assert exc is not None and inv_id in str(exc) and f"rt.resume({inv_id!r})" in str(exc)
    inv = rt.invocation(inv_id)
    assert (inv.status, inv.attempts) == ("paused", 1)
    assert [e.message for e in inv.errors] == ["KeyboardInterrupt() raised in handler code"]
    assert "raise KeyboardInterrupt" in inv.errors[0].stacktrace
    await rt.settle()
    assert rt.invocation(inv_id).attempts == 1  # paused: not retried on the clock
    fixed.append(True)
    rt.resume(inv_id)
    assert await rt.attach(inv_id) == "fixed"
    assert rt.invocation(inv_id).attempts == 2


async def test_an_await_on_a_caller_of_the_interrupted_handler_raises_keyboard_interrupt_naming_the_callee() -> None:
    rt = pg.Runtime(rude)
    exc = await _interrupt_of(rt.service_call(calls_interrupts))
    callee = _only(rt, "Rude/interrupts")
    assert exc is not None and callee in str(exc)
    assert rt.invocation(_only(rt, "Rude/calls_interrupts")).status == "running"  # still waits for its call


async def test_settle_raises_keyboard_interrupt_for_an_interrupted_send() -> None:
    rt = pg.Runtime(rude)
    handle = await rt.service_send(interrupts)
    exc = await _interrupt_of(rt.settle())
    assert exc is not None and handle.invocation_id in str(exc)
    assert rt.invocation(handle.invocation_id).status == "paused"


async def test_an_await_on_something_else_goes_on_when_a_handler_is_interrupted() -> None:
    rt = pg.Runtime(rude)

    async def unrelated() -> object:
        try:
            return await rt.service_call(sleeps, arg=5)
        except KeyboardInterrupt as exc:  # must not happen
            return exc

    other = asyncio.ensure_future(unrelated())
    exc = await _interrupt_of(rt.service_call(interrupts))
    other = await other
    assert other == "slept" and exc is not None


async def test_keyboard_interrupt_in_an_async_run_closure_ends_the_attempt_instead_of_the_event_loop() -> None:
    rt = pg.Runtime(rude)
    exc = await _interrupt_of(rt.service_call(interrupts_in_run))
    inv = rt.invocation(_only(rt, "Rude/interrupts_in_run"))
    assert exc is not None and inv.id in str(exc)
    assert inv.status == "paused" and inv.errors[0].message == "KeyboardInterrupt() raised in handler code"


async def test_system_exit_in_handler_code_is_a_failed_attempt_retried_on_the_clock() -> None:
    rt = pg.Runtime(rude)
    assert await rt.service_call(exits_once) == "back"
    inv = rt.invocation(_only(rt, "Rude/exits_once"))
    assert inv.attempts == 2 and [e.message for e in inv.errors] == ["SystemExit(3) raised in handler code"]


async def test_a_cancelled_error_out_of_handler_code_is_a_failed_attempt_not_a_hang() -> None:
    rt = pg.Runtime(rude)
    assert await asyncio.wait_for(rt.service_call(cancels_once), 10) == "back"
    inv = rt.invocation(_only(rt, "Rude/cancels_once"))
    assert inv.attempts == 2
    assert inv.errors[0].message.startswith("CancelledError() raised in handler code")


async def test_the_runtime_routes_sigint_only_while_a_cell_awaits_it_and_puts_the_old_handler_back() -> None:
    handlers_seen.clear()
    before = signal.getsignal(signal.SIGINT)
    rt = pg.Runtime(rude)
    runner_handler = signal.getsignal(signal.SIGINT)  # asyncio.run's own, which cancels the main task
    assert await rt.service_call(peeks) == "peeked"
    assert signal.getsignal(signal.SIGINT) is runner_handler
    assert signal.getsignal(signal.SIGINT) is before
    assert len(handlers_seen) == 1 and handlers_seen[0] is not runner_handler
    assert getattr(handlers_seen[0], "__module__", "") == "playground.runtime.interrupts"


SPIN = """
import asyncio, restate, playground as pg

svc = restate.Service("Spin")

@svc.handler()
async def spin(ctx: restate.Context) -> str:
    await ctx.run_typed("before", lambda: "stored")
    print("spinning", flush=True)
    while True:  # never awaits: blocks the loop until interrupted
        pass

async def main() -> None:
    rt = pg.Runtime(svc)
    try:
        await rt.service_call(spin)
    except KeyboardInterrupt as exc:
        print("KeyboardInterrupt from the await:", exc, flush=True)
    inv = rt.invocation(rt.invocations().id.iloc[0])
    print("record:", inv.status, inv.attempts, [e.message for e in inv.errors], flush=True)

asyncio.run(main())
print("exited", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_a_real_sigint_while_a_handler_spins_reaches_the_await_and_records_the_failed_attempt(tmp_path: Path) -> None:
    script = tmp_path / "spin.py"
    script.write_text(SPIN)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "spinning\n"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "KeyboardInterrupt from the await: KeyboardInterrupt() stopped the handler of inv_" in out
    assert "record: paused 1 ['KeyboardInterrupt() raised in handler code']" in out
    assert out.endswith("exited\n")


# ------------------------------------------------------------------------------ item 5: a cancelled await


async def test_a_cancelled_object_call_says_the_invocation_goes_on_holding_its_key_and_how_to_attach_or_cancel() -> None:  # noqa: E501
    rt = pg.Runtime(held, clock="real")
    call = asyncio.ensure_future(rt.object_call(nap, key="k", arg=30))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError) as ei:
        await call
    inv_id = _only(rt, "Held/k/nap")
    msg = str(ei.value)
    assert msg.startswith("object_call to Held/k/nap was cancelled")
    assert f"but invocation {inv_id} keeps running, as on Restate" in msg and "keeps the lock on Held/k" in msg
    assert f"await rt.attach({inv_id!r})" in msg and f"rt.cancel({inv_id!r})" in msg
    rt.cancel(inv_id)
    with pytest.raises(restate.TerminalError, match="cancelled"):
        await rt.attach(inv_id)


async def test_a_timed_out_service_call_names_the_invocation_that_goes_on_without_a_lock() -> None:
    rt = pg.Runtime(rude, clock="real")
    with pytest.raises(TimeoutError) as ei:
        await asyncio.wait_for(rt.service_call(sleeps, arg=1), 0.2)
    cause = ei.value.__cause__
    assert isinstance(cause, asyncio.CancelledError)
    assert "service_call to Rude/sleeps was cancelled" in str(cause) and "lock" not in str(cause)
    rt.close()


# ------------------------------------------------------------------------------ item 6: nothing left running

LEFTOVERS = """
import asyncio, sys, restate, playground as pg
from datetime import timedelta

held = restate.VirtualObject("Held")

@held.handler()
async def nap(ctx: restate.ObjectContext) -> str:
    await ctx.sleep(timedelta(seconds=30))
    return "rested"

async def main(after: float, close: bool) -> None:
    rt = pg.Runtime(held, clock="real")
    call = asyncio.ensure_future(rt.object_call(nap, key="k"))
    await asyncio.sleep(after)
    call.cancel()
    try:
        await call
    except asyncio.CancelledError:
        pass
    if close:
        rt.close()
        for _ in range(50):
            await asyncio.sleep(0)
        left = [t.get_coro().__qualname__ for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        print("left after close:", left, flush=True)

asyncio.run(main(float(sys.argv[1]), sys.argv[2] == "close"))
print("returned", flush=True)
"""


@pytest.mark.parametrize("after", [0.0, 0.3])
@pytest.mark.parametrize("close", [False, True])
def test_asyncio_run_returns_promptly_and_leaves_no_task_after_a_cancelled_real_clock_await(
        tmp_path: Path, after: float, close: bool) -> None:
    script = tmp_path / "leftovers.py"
    script.write_text(textwrap.dedent(LEFTOVERS))
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(script), str(after), "close" if close else "keep"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - t0 < 25  # well before the handler's 30 s sleep would end
    assert "Task was destroyed but it is pending" not in done.stderr
    assert done.stdout.endswith("returned\n")
    if close:
        assert "left after close: []" in done.stdout
