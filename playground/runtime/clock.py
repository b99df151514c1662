"""Clocks and the timer heap. Time is injected: virtual (default), manual, or real.

Timers are ordered by (due time, sequence number), so equal due times fire in creation order and a
notebook behaves the same on every run.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
# The clock's range: what a Python datetime can show. A due time beyond it is refused where it is asked for.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
LATEST = datetime.max.replace(tzinfo=UTC, microsecond=999000)
MAX_MS = (LATEST - EPOCH) // _MS
MIN_MS = (datetime.min.replace(tzinfo=UTC) - EPOCH) // _MS


def check_due(due_ms: int, what: str) -> int:
    """`due_ms` if the clock can show it, else a ValueError naming the limit."""
    if due_ms > MAX_MS:
        raise ValueError(f"{what} would be due after {LATEST.isoformat()}, the latest time the clock can "
                         f"represent; pass a shorter duration")
    return due_ms


class Clock:
    """What the runtime asks of time, whichever clock it runs on: now, moving it, and what to do when
    nothing can progress. One subclass per kind (like trio's Clock and MockClock); the runtime never asks
    which kind it has."""

    kind = ""
    # timers wait for the wall clock (a loop callback fires them) instead of the runtime moving time
    follows_wall_time = False

    def __init__(self, start: datetime | None = None) -> None:
        start = DEFAULT_START if start is None else start
        if not isinstance(start, datetime):
            raise TypeError(f"start must be a timezone-aware datetime such as datetime(2026, 1, 1, "
                            f"tzinfo=timezone.utc), not {type(start).__name__}")
        if start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware, e.g. datetime(2026, 1, 1, tzinfo=timezone.utc)")
        self._now_ms = int(start.timestamp() * 1000)

    def now_ms(self) -> int:
        return self._now_ms

    def check_movable(self, what: str) -> None:
        """Raise if `what` (an operation that moves time) cannot be used with this clock."""

    def set(self, ms: int) -> None:
        """Move forward to `ms` (never back)."""
        self._now_ms = max(self._now_ms, ms)

    def restore(self, ms: int) -> None:
        """The time a store recorded: moved forward to, as `set`."""
        self.set(ms)

    def reset(self, ms: int) -> None:
        """Exactly the time a store recorded, even if earlier (the last event was not stored)."""
        self._now_ms = ms

    def jump_when_idle(self, due_ms: int) -> bool:
        """Nothing can progress and the next timer is due at `due_ms`: move there if this clock does so
        by itself (True), else leave time alone (False)."""
        return False


class VirtualClock(Clock):
    """Jumps to the next timer whenever nothing can progress."""

    kind = "virtual"

    def jump_when_idle(self, due_ms: int) -> bool:
        self.set(due_ms)
        return True


class ManualClock(Clock):
    """Moves only by rt.advance()."""

    kind = "manual"


class WallClock(Clock):
    """The wall clock: timers fire when it reaches them; nothing can move it."""

    kind = "real"
    follows_wall_time = True

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def check_movable(self, what: str) -> None:
        raise ValueError(f"{what} needs a virtual or manual clock; this runtime uses clock='real'")

    def set(self, ms: int) -> None:
        raise ValueError("the real clock cannot be moved; create the runtime with clock='virtual' or 'manual'")

    def restore(self, ms: int) -> None:
        pass  # the wall clock shows the time it is

    def reset(self, ms: int) -> None:
        pass


CLOCKS: dict[str, type[Clock]] = {"virtual": VirtualClock, "manual": ManualClock, "real": WallClock}


def make_clock(kind: str = "virtual", start: datetime | None = None) -> Clock:
    """The clock named `kind` ('virtual', 'manual' or 'real'), starting at `start`."""
    cls = CLOCKS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"clock must be 'virtual', 'manual' or 'real', not {kind!r}")
    return cls(start)


def to_datetime(ms: int) -> datetime:
    """The time `ms` shows as; any stored value beyond the clock's range shows as its limit, so a view of
    the runtime never fails on a record."""
    return EPOCH + min(max(ms, MIN_MS), MAX_MS) * _MS


@dataclass(slots=True)
class Timer:
    due_ms: int
    seq: int
    action: Callable[[], None]
    what: str = ""
    # housekeeping timers (retention expiry) never trigger time skipping on their own
    housekeeping: bool = False
    cancelled: bool = False

    def key(self) -> tuple[int, int]:
        return (self.due_ms, self.seq)


# a retention timer in its lane: (due, sequence, action, the action's argument, what); made a Timer only
# when it is the next due, so a completed invocation kept for a day costs one tuple, not a Timer and a closure
Retention = tuple[int, int, Callable[[Any], None], Any, str]


class TimerHeap:
    """Timers in (due time, sequence) order, kept in two places.

    Wake-up timers (sleeps, delayed starts, retries) live in a heap of (due, seq, timer) tuples, compared
    in C. Housekeeping timers (retention expiry, one per completed invocation) each expire a fixed duration
    after "now", so one FIFO lane per duration is already in order and needs no heap at all; they are
    never cancelled (an expiry finds nothing to do instead). Time skipping looks only at wake-up timers.
    """

    def __init__(self) -> None:
        self._wake: list[tuple[int, int, Timer]] = []
        self._lanes: dict[int, deque[Retention]] = {}
        self._seq = itertools.count()

    def add(self, due_ms: int, action: Callable[[], None], what: str = "") -> Timer:
        t = Timer(due_ms, next(self._seq), action, what)
        heapq.heappush(self._wake, (due_ms, t.seq, t))
        return t

    def add_housekeeping(self, now_ms: int, after_ms: int, action: Callable[[Any], None], arg: Any,
                         what: str = "") -> None:
        """`action(arg)` after `after_ms`."""
        due = now_ms + after_ms
        entry = (due, next(self._seq), action, arg, what)
        lane = self._lanes.get(after_ms)
        if lane is None:
            lane = self._lanes[after_ms] = deque()
        i = len(lane)
        while i and lane[i - 1][0] > due:  # only a wall clock stepping back gets here
            i -= 1
        if i == len(lane):
            lane.append(entry)
        else:
            lane.insert(i, entry)

    def clear(self) -> None:
        self._wake.clear()
        self._lanes.clear()

    def _wake_head(self) -> Timer | None:
        heap = self._wake
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def _house_head(self) -> deque[Retention] | None:
        """The lane whose head is due first."""
        best: deque[Retention] | None = None
        for lane in self._lanes.values():
            if lane and (best is None or lane[0][:2] < best[0][:2]):
                best = lane
        return best

    @staticmethod
    def _timer(entry: Retention) -> Timer:
        due, seq, action, arg, what = entry
        return Timer(due, seq, partial(action, arg), what, housekeeping=True)

    def _house_first(self, wake: Timer | None) -> deque[Retention] | None:
        """The lane whose head is due before `wake` (None: `wake` goes first)."""
        lane = self._house_head()
        if lane is not None and (wake is None or lane[0][:2] < wake.key()):
            return lane
        return None

    def next_due(self, include_housekeeping: bool = True) -> Timer | None:
        wake = self._wake_head()
        if not include_housekeeping:
            return wake
        lane = self._house_first(wake)
        return self._timer(lane[0]) if lane is not None else wake

    def pop_due(self, now_ms: int) -> Timer | None:
        # the common answer, "nothing is due", read off the heads without building keys (cancelled heads
        # are at worst early, which only sends the look below)
        if ((not self._wake or self._wake[0][0] > now_ms)
                and all(not lane or lane[0][0] > now_ms for lane in self._lanes.values())):
            return None
        wake = self._wake_head()
        lane = self._house_first(wake)
        if lane is not None:
            return self._timer(lane.popleft()) if lane[0][0] <= now_ms else None
        if wake is None or wake.due_ms > now_ms:
            return None
        heapq.heappop(self._wake)
        return wake
