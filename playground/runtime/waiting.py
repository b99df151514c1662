"""Waiting without hanging: when the runtime is idle, skipping virtual time, and raising instead of hanging
(the explanations of StuckError and DeadlockError come from explain.py).

Idleness is known, not polled: every state change that can make the engine idle says so (`touch`: the SDK
blocked on the engine, an attempt ended, an invocation completed or paused, a message held for the
scheduler), and an await asleep in `quiesce` is woken to look again. The one wall-clock timer left is the
inactivity watchdog (see `Waiter.arm_watchdog`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from ..errors import StuckError
from .clock import Clock
from .common import (
    INACTIVITY_TIMEOUT_S,
)
from .explain import Explainer
from .interrupts import sigint_guard
from .keys import Keys
from .model import Invocation, Target
from .scheduler import Scheduler
from .timers import Timers
from .waitfor import Cycle, WaitForGraph


def _completed(inv: Invocation) -> bool:
    return inv.completed


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Busy(Protocol):
    """The invocations busy in an attempt, and whether one with messages held by the scheduler is blocked
    on the engine (the attempts part)."""

    live: set[Invocation]

    def blocked_by_queue(self, inv: Invocation) -> bool: ...


class Opener(Protocol):
    """Whether the runtime is open, and the restored invocations it starts once a loop runs (recovery.py)."""

    def check_open(self) -> None: ...
    def start_restored(self) -> None: ...


class WaitHost(Protocol):
    """What the waiting part needs of the engine: whether it is open, restored invocations to start, the
    clock, timers and scheduler, the tables it watches (read each time: a restore replaces them), and the
    explainer it raises from."""

    scheduler: Scheduler

    @property
    def _closed(self) -> str | None: ...
    @property
    def _to_start(self) -> list[Invocation]: ...
    @property
    def _clock(self) -> Clock: ...
    @property
    def _timers(self) -> Timers: ...
    @property
    def _invocations(self) -> dict[str, Invocation]: ...
    @property
    def _attempts(self) -> Busy: ...
    @property
    def _wait(self) -> WaitForGraph: ...
    @property
    def _keys(self) -> Keys: ...
    @property
    def _progress(self) -> int: ...
    @property
    def _rejected_calls(self) -> dict[str, Target]: ...
    @property
    def _explainer(self) -> Explainer: ...

    @property
    def _recovery(self) -> Opener: ...

    def _commit(self) -> None: ...
    def _now(self) -> int: ...


class Waiter:
    """The engine's part that decides when nothing can progress, and waits without hanging. It owns the
    awaits asleep on the loop (`sleepers`), the inactivity watchdog, the interrupts of handler code
    (`interrupts`) and the time of the last activity. The engine calls quiesce, await_done, touch, wake,
    on_edge, interrupt_awaits, wake_all_awaits and stop_watchdog."""


    def __init__(self, host: WaitHost) -> None:
        self.host = host
        self.last_activity = time.monotonic()
        self.sleepers: set[asyncio.Future[None]] = set()  # waiters in quiesce
        self.check_scheduled = False
        # A loop callback, never a task: a closing loop drops it, and nothing is left running.
        self.watchdog: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None  # and its loop
        # (invocation id, message) of each interrupt of handler code; awaits raise KeyboardInterrupt for
        # the ones that happened while they waited (see raise_if_interrupted)
        self.interrupts: list[tuple[str, str]] = []

    def stop_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog[1].cancel()
        self.watchdog = None

    stop_heartbeat = stop_watchdog  # the name recovery.py calls

    # ------------------------------------------------------------------ idleness
    @staticmethod
    def _is_blocked(inv: Invocation) -> bool:
        a = inv.attempt
        return (a is not None and a.sdk_waiting and not a.input_closed
                and not inv.pending_runs)

    def _is_busy(self, inv: Invocation) -> bool:
        """Running handler code: not blocked on the engine as observed (sdk_hooks), nor by what it posted
        and a strategy holds (its terminal message or its end wait in the queue: see blocked_by_queue)."""
        if self._is_blocked(inv):
            return False
        return not (self.host.scheduler.held and self.host._attempts.blocked_by_queue(inv))

    def _busy(self) -> list[Invocation]:
        return [inv for inv in self.host._attempts.live if self._is_busy(inv)]

    def any_busy(self) -> bool:
        for inv in self.host._attempts.live:
            if not self._is_blocked(inv) and not (self.host.scheduler.held
                                                  and self.host._attempts.blocked_by_queue(inv)):
                return True
        return False

    async def quiesce(self, until: Invocation | None = None, seen: int | None = None) -> None:
        """Return when nothing can progress at the current time, or `until` has completed.

        A waiter sleeps on a future of its own, woken by its invocation completing, by the idle check that
        each state change schedules (once per loop turn, however many waiters), or by the watchdog.
        Raises KeyboardInterrupt when handler code it waits on is interrupted after interrupt number `seen`.
        """
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        if seen is None:
            seen = len(self.interrupts)
        self._before_waiting()
        while True:
            self.raise_if_interrupted(seen, until)
            if until is not None and until.completed:
                return
            self.host._timers.fire_due()
            if not self.any_busy():
                if await self._idle(until, seen):
                    return
                continue
            if await self._sleep(until):
                return

    def _before_waiting(self) -> None:
        if self.host._closed is not None:
            self.host._recovery.check_open()
        if self.host._to_start:
            self.host._recovery.start_restored()
            self.host._commit()
        if self.host._clock.follows_wall_time:
            self.host._timers.arm()  # e.g. timers restored from a store, or set up before this loop ran

    async def _idle(self, until: Invocation | None, seen: int) -> bool:
        """No attempt runs: whether the wait is over (True), or something was started (False)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        # Cell code running beside this await in another task gets two loop turns to post its work before
        # idleness is decided (`call = asyncio.ensure_future(rt.object_call(...))` then `await rt.settle()`:
        # the call has not run when settle first looks). The engine's own events need none: they are
        # posted, or touch, as they happen.
        for _ in range(2):
            await asyncio.sleep(0)
        self.raise_if_interrupted(seen, until)
        if until is not None and until.completed:
            return True
        # nothing runs: held events (in the strategy's order), then due timers, may start something
        if self.any_busy():
            return False
        scheduler = self.host.scheduler
        if scheduler.pending and scheduler.run_pending():
            if self.host._closed is not None:
                self.host._recovery.check_open()  # an event it ran stopped the runtime (a full disk)
            return False
        return not self.host._timers.fire_due()

    async def _sleep(self, until: Invocation | None) -> bool:
        """An attempt runs: sleep until something changes; whether the wait is over (True)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.sleepers.add(fut)
        if until is not None:
            assert isinstance(until.waiters, list)  # a live invocation's (DONE only once it completes)
            until.waiters.append(fut)
        self.arm_watchdog(loop)
        await fut
        if self.host._closed is not None:
            self.host._recovery.check_open()
        if until is not None and self.host._invocations.get(until.id, until) is not until:
            return True  # restarted from the store: the caller goes on with the restored record
        if until is not None and self.host._wait.cycle_reached_from(until.id) is not None:
            return True  # deadlocked: the caller reports it at once, without waiting for the rest to go idle
        if time.monotonic() - self.last_activity > INACTIVITY_TIMEOUT_S and self.any_busy():
            busy = ", ".join(f"{i.id} {i.target}" for i in self._busy())
            raise StuckError(
                f"handler code has run for over {INACTIVITY_TIMEOUT_S:.0f} s without finishing or "
                f"reaching a Restate await: {busy}. Is it waiting on something outside Restate (a plain "
                f"asyncio future, a lock, a network call)?")
        return False

    @staticmethod
    def wake(futures: list[asyncio.Future[None]] | set[asyncio.Future[None]]) -> None:
        for fut in futures:
            if not fut.done():
                fut.set_result(None)
        if futures:
            futures.clear()

    def arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """The one wall-clock timer of the engine, armed while an await sleeps: when the inactivity limit
        has passed since the last message from an attempt, it wakes the sleeping awaits, which raise
        StuckError if handler code is still busy. It is needed because handler code that never reaches a
        Restate await (it waits on a plain asyncio future, a lock, a network call) posts no event and
        never blocks on the engine: nothing else would ever wake an await on it. Every other wake-up is
        an event (see `touch`)."""
        if self.watchdog is not None and self.watchdog[0] is loop:
            return  # armed on this loop (at the latest for an earlier deadline: it re-arms when it fires)
        delay = max(0.0, self.last_activity + INACTIVITY_TIMEOUT_S - time.monotonic()) + 0.01
        self.watchdog = (loop, loop.call_later(delay, self._watchdog_fired))

    def _watchdog_fired(self) -> None:
        self.watchdog = None
        self.wake(self.sleepers)  # each looks at the time since the last activity, then sleeps (and re-arms)

    def touch(self) -> None:
        """Something may have become idle: check once, on the next loop turn. With a few attempts live it
        looks now first: one still busy will touch again when it blocks or ends, so no check is needed."""
        if not self.check_scheduled and self.sleepers:
            if len(self.host._attempts.live) <= 4 and self.any_busy():
                return
            self.check_scheduled = True
            asyncio.get_running_loop().call_soon(self._check_idle)

    def _check_idle(self) -> None:
        self.check_scheduled = False
        if not self.any_busy():
            self.wake(self.sleepers)

    async def await_done(self, inv: Invocation, what: str) -> Invocation:
        """Wait for an invocation to complete, skipping virtual time when idle; raise instead of hanging.
        Returns its record (after rt.faults.restart, the one restored from the store).

        While it waits, an interrupt (SIGINT) that lands in handler code ends that attempt (see
        interrupts.py). If this await is cancelled instead, its CancelledError says what goes on running."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        seen = len(self.interrupts)
        with sigint_guard:
            try:
                if self._may_sleep_at_once(inv):
                    await self._sleep(inv)
                done = inv if inv.completed else await self._wait_until_done(inv, what, seen)
                self.host._commit()  # a result given to a cell is on disk (a durable store writes it now)
                return done
            except asyncio.CancelledError as exc:
                still = self.host._invocations.get(inv.id)
                if still is None or still.completed or self.host._closed is not None:
                    raise
                raise asyncio.CancelledError(self._goes_on(still, what, exc)) from None

    def _may_sleep_at_once(self, inv: Invocation) -> bool:
        """Whether an await may go to sleep before its first round of _wait_until_done: true when that round
        would find what is found here (the usual case: a call just started, its attempt busy), so a call
        from a cell skips its rounds. Anything else (a restore to finish, the real clock, a deadlock, no
        attempt busy) takes the rounds."""
        host = self.host
        if inv.completed or host._closed is not None or host._to_start or host._clock.follows_wall_time:
            return False
        if host._wait.cycle_reached_from(inv.id) is not None:
            return False
        self.last_activity = time.monotonic()
        host._timers.fire_due()
        return self.any_busy()

    async def _wait_until_done(self, inv: Invocation, what: str, seen: int) -> Invocation:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        while True:
            inv = self.host._invocations.get(inv.id, inv)
            if inv.completed:
                return inv
            self.last_activity = time.monotonic()
            self.host._explainer.raise_if_deadlocked(inv, what)
            await self.quiesce(until=inv, seen=seen)
            if _completed(inv):  # (by what ran meanwhile)
                return inv
            self.host._explainer.raise_if_deadlocked(inv, what)
            # Idle. Code running beside this await (the rest of a cell that started it in the background,
            # e.g. `rt.reject_awakeable(...)` after `await rt.settle()`) may still complete what it waits
            # on: give it a few loop turns before deciding it is stuck. Nothing of the engine's needs them.
            epoch = self.host._progress
            for _ in range(4):
                await asyncio.sleep(0)
            self.raise_if_interrupted(seen, inv)
            if inv.completed or self.host._progress != epoch or self.any_busy() or self.host.scheduler.pending:
                continue
            if self.host._rejected_calls:
                self.host._explainer.raise_if_rejected_call(inv, what)
            nxt = self.host._timers.next_due(include_housekeeping=False)
            if nxt is not None and self.host._clock.jump_when_idle(nxt.due_ms):
                continue
            if nxt is not None and self.host._clock.follows_wall_time:
                await self._sleep_until(inv, nxt.due_ms)
                continue
            self.host._explainer.raise_stuck(inv, what, nxt)

    async def _sleep_until(self, inv: Invocation, due_ms: int) -> None:
        """clock='real': sleep until a timer is due, `inv` completes or something interrupts it."""
        self.host._timers.arm()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        assert isinstance(inv.waiters, list)  # a live invocation's (DONE only once it completes)
        inv.waiters.append(fut)
        alarm = loop.call_later(max(0.01, (due_ms - self.host._now()) / 1000), _set_done, fut)
        try:
            await fut
        finally:
            alarm.cancel()

    def _goes_on(self, inv: Invocation, what: str, exc: asyncio.CancelledError) -> str:
        """What a cancelled await (Jupyter's interrupt button, a timeout) leaves behind, and what to do about it."""
        why = f" ({exc.args[0]})" if exc.args and exc.args[0] else ""
        lock = (f", and it keeps the lock on {inv.target.service}/{inv.target.key} until it ends"
                if inv.lock_key is not None and self.host._keys.holder(inv.lock_key) == inv.id else "")
        state = {"running": "keeps running", "paused": "stays paused"}.get(inv.status, f"keeps running ({inv.status})")
        return (f"{what} was cancelled{why}, but invocation {inv.id} {state}, as on Restate: cancelling an "
                f"await does not cancel the invocation{lock}. Wait for it again with "
                f"`await rt.attach({inv.id!r})`; cancel it with `rt.cancel({inv.id!r})`.")

    def interrupt_awaits(self, inv: Invocation, exc: KeyboardInterrupt) -> None:
        """Handler code of `inv` was interrupted, its attempt recorded as failed and `inv` paused: the awaits
        waiting on it (directly or through calls and locks) raise KeyboardInterrupt, as do settle/advance."""
        self.interrupts.append((inv.id, (
            f"{exc!r} stopped the handler of {inv.id} ({inv.target}) in attempt {inv.attempts}; the attempt is "
            f"recorded as failed and the invocation is paused. Run it again from its journal with "
            f"rt.resume({inv.id!r}), or end it with rt.kill({inv.id!r}).")))
        self.wake_all_awaits()

    def wake_all_awaits(self) -> None:
        """Wake every await in progress (settle, advance, and awaits on invocations), to look again."""
        self.wake(self.sleepers)
        for inv in list(self.host._invocations.values()):
            if inv.waiters and not inv.completed:
                self.wake(inv.waiters)

    def raise_if_interrupted(self, seen: int, inv: Invocation | None) -> None:
        """Raise KeyboardInterrupt for an interrupt after number `seen` that this await waits on (an await
        without an invocation, settle() or advance(), waits on everything)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        for inv_id, message in self.interrupts[seen:]:
            if inv is None or inv.id == inv_id or self.host._wait.reaches(inv.id, inv_id):
                raise KeyboardInterrupt(message)

    def on_edge(self, cycle: Cycle | None) -> None:
        if cycle is not None:
            self.wake(self.sleepers)  # awaits on a member, or behind one, raise now
