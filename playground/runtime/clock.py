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


@dataclass(order=True)
class Timer:
    due_ms: int
    seq: int
    action: Callable[[], None] = field(compare=False)
    what: str = field(compare=False, default="")
    # housekeeping timers (retention expiry) never trigger time skipping on their own
    housekeeping: bool = field(compare=False, default=False)
    cancelled: bool = field(compare=False, default=False)


class TimerHeap:
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def add(self, due_ms: int, action: Callable[[], None], what: str = "", housekeeping: bool = False) -> Timer:
        t = Timer(due_ms, next(self._seq), action, what, housekeeping)
        heapq.heappush(self._heap, t)
        return t

    def _prune(self) -> None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)

    def pop_due(self, now_ms: int) -> Timer | None:
        self._prune()
        if self._heap and self._heap[0].due_ms <= now_ms:
            return heapq.heappop(self._heap)
        return None

    def next_due(self, include_housekeeping: bool = True) -> Timer | None:
        self._prune()
        if include_housekeeping:
            return self._heap[0] if self._heap else None
        live = [t for t in self._heap if not t.cancelled and not t.housekeeping]
        return min(live) if live else None

    def pending(self) -> list[Timer]:
        return sorted(t for t in self._heap if not t.cancelled)
