"""Clocks and the timer heap. Time is injected: virtual (default), manual, or real.

Timers are ordered by (due time, sequence number), so equal due times fire in creation order and a
notebook behaves the same on every run.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Clock:
    """`kind` is 'virtual' (jumps when idle), 'manual' (moves only by advance) or 'real' (wall clock)."""

    def __init__(self, kind: str = "virtual", start: datetime | None = None) -> None:
        if kind not in ("virtual", "manual", "real"):
            raise ValueError(f"clock must be 'virtual', 'manual' or 'real', not {kind!r}")
        self.kind = kind
        start = start or DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware, e.g. datetime(2026, 1, 1, tzinfo=timezone.utc)")
        self._now_ms = int(start.timestamp() * 1000)

    def now_ms(self) -> int:
        if self.kind == "real":
            return int(time.time() * 1000)
        return self._now_ms

    def set(self, ms: int) -> None:
        if self.kind == "real":
            raise ValueError("the real clock cannot be moved; create the runtime with clock='virtual' or 'manual'")
        self._now_ms = max(self._now_ms, ms)


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@dataclass(order=True, slots=True)
class Timer:
    due_ms: int
    seq: int
    action: Callable[[], None] = field(compare=False)
    what: str = field(compare=False, default="")
    # housekeeping timers (retention expiry) never trigger time skipping on their own
    housekeeping: bool = field(compare=False, default=False)
    cancelled: bool = field(compare=False, default=False)


class TimerHeap:
    """Two heaps: timers that wake work up (sleeps, delayed starts, retries) and housekeeping (retention
    expiry). Time skipping looks only at the first, so it must not scan the second."""

    def __init__(self) -> None:
        self._wake: list[Timer] = []
        self._house: list[Timer] = []
        self._seq = itertools.count()

    def add(self, due_ms: int, action: Callable[[], None], what: str = "", housekeeping: bool = False) -> Timer:
        t = Timer(due_ms, next(self._seq), action, what, housekeeping)
        heapq.heappush(self._house if housekeeping else self._wake, t)
        return t

    @staticmethod
    def _head(heap: list[Timer]) -> Timer | None:
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def next_due(self, include_housekeeping: bool = True) -> Timer | None:
        wake = self._head(self._wake)
        if not include_housekeeping:
            return wake
        house = self._head(self._house)
        if wake is None or (house is not None and house < wake):
            return house
        return wake

    def pop_due(self, now_ms: int) -> Timer | None:
        t = self.next_due()
        if t is None or t.due_ms > now_ms:
            return None
        heapq.heappop(self._house if t.housekeeping else self._wake)
        return t

    def pending(self) -> list[Timer]:
        return sorted(t for t in self._wake + self._house if not t.cancelled)
