"""Waiting without hanging: when the runtime is idle, skipping virtual time, and raising instead of hanging
(the explanations of StuckError and DeadlockError come from explain.py)."""

from __future__ import annotations

import asyncio
import time

from ..errors import Deadlock, StuckError
from .common import (
    INACTIVITY_TIMEOUT_S,
)
from .explain import Explainer
from .interrupts import sigint_guard
from .model import (
    Invocation,
)
from .waitfor import Cycle


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Waiting:
    """Part of Runtime (see core.py): it works on the state Runtime.__init__ sets up."""

    # ------------------------------------------------------------------ idleness
    @staticmethod
    def _is_blocked(inv: Invocation) -> bool:
        a = inv.attempt
        return (a is not None and a.sdk_waiting and not a.input_closed and a.unread == 0
                and not inv.pending_runs)

    def _busy(self) -> list[Invocation]:
        return [inv for inv in self._live if not self._is_blocked(inv)]

    def _any_busy(self) -> bool:
        return any(not self._is_blocked(inv) for inv in self._live)

    async def _quiesce(self, until: Invocation | None = None, seen: int | None = None) -> None:
        """Return when nothing can progress at the current time, or `until` has completed.

        A waiter sleeps on a future of its own, woken by its invocation completing, by the idle check that
        each state change schedules (once per loop turn, however many waiters), or by the heartbeat.
        Raises KeyboardInterrupt when handler code it waits on is interrupted after interrupt number `seen`.
        """
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        loop = asyncio.get_running_loop()
        if seen is None:
            seen = len(self._interrupts)
        if self._closed is not None:
            self._check_open()
        if self._to_start:
            self._start_restored()
            self._commit()
        if self._clock.follows_wall_time:
            self._timers.arm()  # e.g. timers restored from a store, or set up before this loop ran
        while True:
            self._raise_if_interrupted(seen, until)
            if until is not None and until.completed:
                return
            self._timers.fire_due()
            if not self._any_busy():
                # let callbacks already scheduled on the loop run, then look again
                for _ in range(2):
                    await asyncio.sleep(0)
                self._raise_if_interrupted(seen, until)
                if until is not None and until.completed:
                    return
                # nothing runs: held events (in the strategy's order), then due timers, may start something
                if (not self._any_busy() and (self.scheduler.eager or not self.scheduler.run_pending())
                        and not self._timers.fire_due()):
                    return
                continue
            fut = loop.create_future()
            self._sleepers.add(fut)
            if until is not None:
                until.waiters.append(fut)
            if self._heartbeat is None or self._heartbeat[0] is not loop:  # none yet, or left on a closed loop
                self._heartbeat = (loop, loop.call_later(1.0, self._beat))
            await fut
            if self._closed is not None:
                self._check_open()
            if until is not None and self._invocations.get(until.id, until) is not until:
                return  # restarted from the store: the caller goes on with the restored record
            if until is not None and self._wait.cycle_reached_from(until.id) is not None:
                return  # deadlocked: the caller reports it at once, without waiting for the rest to go idle
            if time.monotonic() - self._last_activity > INACTIVITY_TIMEOUT_S and self._any_busy():
                busy = ", ".join(f"{i.id} {i.target}" for i in self._busy())
                raise StuckError(
                    f"handler code has run for over {INACTIVITY_TIMEOUT_S:.0f} s without finishing or "
                    f"reaching a Restate await: {busy}. Is it waiting on something outside Restate (a plain "
                    f"asyncio future, a lock, a network call)?")

    @staticmethod
    def _wake(futures: list[asyncio.Future[None]] | set[asyncio.Future[None]]) -> None:
        for fut in futures:
            if not fut.done():
                fut.set_result(None)
        if futures:
            futures.clear()

    def _beat(self) -> None:
        """Wake waiters once a second while anyone waits, so the inactivity check runs."""
        self._heartbeat = None
        if self._sleepers:
            self._wake(self._sleepers)
            loop = asyncio.get_running_loop()
            self._heartbeat = (loop, loop.call_later(1.0, self._beat))

    def _touch(self) -> None:
        """Something may have become idle: check once, on the next loop turn."""
        if not self._check_scheduled and self._sleepers:
            self._check_scheduled = True
            asyncio.get_running_loop().call_soon(self._check_idle)

    def _check_idle(self) -> None:
        self._check_scheduled = False
        if not self._any_busy():
            self._wake(self._sleepers)

    async def _await_done(self, inv: Invocation, what: str) -> Invocation:
        """Wait for an invocation to complete, skipping virtual time when idle; raise instead of hanging.
        Returns its record (after rt.faults.restart, the one restored from the store).

        While it waits, an interrupt (SIGINT) that lands in handler code ends that attempt (see
        interrupts.py). If this await is cancelled instead, its CancelledError says what goes on running."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        seen = len(self._interrupts)
        with sigint_guard:
            try:
                return await self._wait_until_done(inv, what, seen)
            except asyncio.CancelledError as exc:
                still = self._invocations.get(inv.id)
                if still is None or still.completed or self._closed is not None:
                    raise
                raise asyncio.CancelledError(self._goes_on(still, what, exc)) from None

    async def _wait_until_done(self, inv: Invocation, what: str, seen: int) -> Invocation:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        while True:
            inv = self._invocations.get(inv.id, inv)
            if inv.completed:
                return inv
            self._last_activity = time.monotonic()
            self._explainer.raise_if_deadlocked(inv, what)
            await self._quiesce(until=inv, seen=seen)
            if inv.completed:
                return inv
            self._explainer.raise_if_deadlocked(inv, what)
            # Idle. Code running beside this await (another task, the rest of a cell that started it in the
            # background) may still complete what it waits on: give it a few loop turns before deciding.
            epoch = self._progress
            for _ in range(4):
                await asyncio.sleep(0)
            self._raise_if_interrupted(seen, inv)
            if inv.completed or self._progress != epoch or self._any_busy() or self.scheduler.pending:
                continue
            if self._rejected_calls:
                self._explainer.raise_if_rejected_call(inv, what)
            nxt = self._timers.next_due(include_housekeeping=False)
            if nxt is not None and self._clock.jump_when_idle(nxt.due_ms):
                continue
            if nxt is not None and self._clock.follows_wall_time:
                await self._sleep_until(inv, nxt.due_ms)
                continue
            self._explainer.raise_stuck(inv, what, nxt)

    async def _sleep_until(self, inv: Invocation, due_ms: int) -> None:
        """clock='real': sleep until a timer is due, `inv` completes or something interrupts it."""
        self._timers.arm()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        inv.waiters.append(fut)
        alarm = loop.call_later(max(0.01, (due_ms - self._now()) / 1000), _set_done, fut)
        try:
            await fut
        finally:
            alarm.cancel()

    def _goes_on(self, inv: Invocation, what: str, exc: asyncio.CancelledError) -> str:
        """What a cancelled await (Jupyter's interrupt button, a timeout) leaves behind, and what to do about it."""
        why = f" ({exc.args[0]})" if exc.args and exc.args[0] else ""
        lock = (f", and it keeps the lock on {inv.target.service}/{inv.target.key} until it ends"
                if inv.lock_key is not None and self._keys.holder(inv.lock_key) == inv.id else "")
        state = {"running": "keeps running", "paused": "stays paused"}.get(inv.status, f"keeps running ({inv.status})")
        return (f"{what} was cancelled{why}, but invocation {inv.id} {state}, as on Restate: cancelling an "
                f"await does not cancel the invocation{lock}. Wait for it again with "
                f"`await rt.attach({inv.id!r})`; cancel it with `rt.cancel({inv.id!r})`.")

    def _interrupt_awaits(self, inv: Invocation, exc: KeyboardInterrupt) -> None:
        """Handler code of `inv` was interrupted, its attempt recorded as failed and `inv` paused: the awaits
        waiting on it (directly or through calls and locks) raise KeyboardInterrupt, as do settle/advance."""
        self._interrupts.append((inv.id, (
            f"{exc!r} stopped the handler of {inv.id} ({inv.target}) in attempt {inv.attempts}; the attempt is "
            f"recorded as failed and the invocation is paused. Run it again from its journal with "
            f"rt.resume({inv.id!r}), or end it with rt.kill({inv.id!r}).")))
        self._wake_all_awaits()

    def _wake_all_awaits(self) -> None:
        """Wake every await in progress (settle, advance, and awaits on invocations), to look again."""
        self._wake(self._sleepers)
        for inv in list(self._invocations.values()):
            if inv.waiters and not inv.completed:
                self._wake(inv.waiters)  # type: ignore[arg-type]

    def _raise_if_interrupted(self, seen: int, inv: Invocation | None) -> None:
        """Raise KeyboardInterrupt for an interrupt after number `seen` that this await waits on (an await
        without an invocation, settle() or advance(), waits on everything)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        for inv_id, message in self._interrupts[seen:]:
            if inv is None or inv.id == inv_id or self._wait.reaches(inv.id, inv_id):
                raise KeyboardInterrupt(message)

    def _on_edge(self, cycle: Cycle | None) -> None:
        if cycle is not None:
            self._wake(self._sleepers)  # awaits on a member, or behind one, raise now

    def deadlocks(self) -> list[Deadlock]:
        """The wait-for cycles standing now; each lists its invocations, targets and edges and draws itself."""
        return self._explainer.deadlocks()

    @staticmethod
    def awakeable_id(inv: Invocation, idx: int) -> str:
        return Explainer.awakeable_id(inv, idx)
