"""Timers: the engine's sleeps, delayed starts, retries and retention expiries on its clock. They fire in
(due time, sequence) order through the scheduler, so the strategy decides among timers due at the same
instant; on the wall clock, a loop callback fires them when they are due."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..errors import StoreError
from .clock import Clock, Timer, TimerHeap
from .scheduler import Scheduler


class Timers:
    """The timer heap, and on the wall clock the loop callback armed for the next one."""

    def __init__(self, clock: Clock, scheduler: Scheduler, after_firing: Callable[[], None],
                 stopped: Callable[[], bool]) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.heap = TimerHeap()
        self._after_firing = after_firing  # ends the event (the engine's commit)
        self._stopped = stopped
        # clock="real": the callback that fires the next due timer, and the loop it is scheduled on. A loop
        # callback, never a task: a closing loop drops it, and nothing is left running.
        self._alarm: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None

    def add(self, due_ms: int, action: Callable[[], None], what: str) -> None:
        """A wake-up timer: time skipping may jump to it."""
        self.heap.add(due_ms, action, what)
        self._added()

    def add_housekeeping(self, now_ms: int, after_ms: int, action: Callable[[Any], None], arg: Any,
                         what: str) -> None:
        """A retention timer, `action(arg)`: it fires when time passes, but never makes time skip."""
        self.heap.add_housekeeping(now_ms, after_ms, action, arg, what)
        if self.clock.follows_wall_time:
            self.arm()

    def next_due(self, include_housekeeping: bool = True) -> Timer | None:
        return self.heap.next_due(include_housekeeping)

    def clear(self) -> None:
        """No timers (a closed runtime, or before a restore)."""
        self.heap.clear()

    def fire_due(self) -> bool:
        """Fire every timer due by now, in order; whether any fired."""
        fired = False
        scheduler = self.scheduler
        while (t := self.heap.pop_due(self.clock.now_ms())) is not None:
            # timers due together: the strategy's choice
            scheduler.post(("timer", t.seq), t.what, t.action, "timer", t.due_ms)
            fired = True
            if "timer" in scheduler.held:
                nxt = self.heap.next_due()
                if nxt is None or nxt.due_ms != t.due_ms:
                    scheduler.run_pending()  # this instant's timers, then the next instant's
        if fired:
            self._after_firing()
        return fired

    def _added(self) -> None:
        if self.clock.follows_wall_time:
            self.arm()  # the new timer may be due before the one the loop waits for

    def arm(self) -> None:
        """clock='real': have the running loop call back when the next timer is due (looking at the wall
        clock again at least once a second)."""
        nxt = self.heap.next_due()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the first await arms it (see Waiter.quiesce)
        if nxt is None or self._stopped():
            return
        delay = min(max(0.0, (nxt.due_ms - self.clock.now_ms()) / 1000), 1.0)
        if self._alarm is not None:
            armed_on, h = self._alarm
            if armed_on is loop and not h.cancelled() and h.when() <= loop.time() + delay:
                return  # armed on this loop, and early enough
            h.cancel()
        self._alarm = (loop, loop.call_later(delay, self._on_alarm))

    def disarm(self) -> None:
        if self._alarm is not None:
            self._alarm[1].cancel()
        self._alarm = None

    def _on_alarm(self) -> None:
        self._alarm = None
        try:
            self.fire_due()
        except StoreError:
            return  # the runtime has stopped (see Engine._on_attempt_end)
        self.arm()
