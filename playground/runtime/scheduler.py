"""The scheduler: the one place that decides which event runs next where Restate leaves the order open.

Restate fixes some orders and leaves others open. Fixed: the messages one sender sends to a key reach it
in the order they were sent (a handler that sends A and then B: A is enqueued before B). Open: how the
messages of different senders interleave when they reach a key at the same virtual instant, which of the
runnable attempts of different invocations starts first, and which of the timers due together fires first.
The engine posts each such event here with its sender (its source);
the scheduler keeps one FIFO per source, ordered by sequence number, and asks a `Strategy` which source's
head goes next. So no strategy can reorder one sender's messages, and every interleaving Restate allows
is one some strategy picks.

The default strategy, `AsPosted`, runs each event the moment it is posted: the order the engine has always
used, so ids, times and outputs stay the same. Any other strategy holds events until the engine has
nothing else to do at the current instant (see Waiter.quiesce), then drains them in its order.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """A state change waiting for its turn: who caused it, in which order it was posted, and what it does."""

    seq: int
    source: Hashable
    what: str
    action: Callable[[], None]


class Strategy:
    """Asked which of the ready events runs next (each the oldest of its source). `eager`: run every event
    when it is posted, never asking."""

    eager = False

    def choose(self, ready: Sequence[Event]) -> int:
        """The index in `ready` (ordered by sequence number) of the event to run next."""
        return 0

    def yields(self, ready: Sequence[Event], ran: Sequence[Event]) -> bool:
        """Asked before each choice once this drain has run the events `ran`: True stops the drain here, so
        the attempts those events started run (and post what they send) before the rest of `ready`. A
        handler's sends can so come after a concurrent sender's, or before. Default: never."""
        return False


class AsPosted(Strategy):
    """The default: each event runs as it is posted, in the order the engine's call stack produces."""

    eager = True


class OldestFirst(Strategy):
    """Held until the instant is idle, then run oldest first (as posted, but through the queue)."""


class NewestSourceFirst(Strategy):
    """Held until the instant is idle, then the most recently posted source's oldest event first."""

    def choose(self, ready: Sequence[Event]) -> int:
        return len(ready) - 1


class Scripted(Strategy):
    """Takes its choices from a script (index per decision; 0 once the script runs out) and records how
    many events were ready at each decision: enough to enumerate every allowed order, one run each."""

    def __init__(self, script: Sequence[int] = ()) -> None:
        self.script = list(script)
        self.options: list[int] = []

    def choose(self, ready: Sequence[Event]) -> int:
        step = len(self.options)
        self.options.append(len(ready))
        return self.script[step] if step < len(self.script) else 0


class Scheduler:
    """One FIFO per source; `run_pending` drains them in the strategy's order."""

    def __init__(self, strategy: Strategy | None = None) -> None:
        self._queues: dict[Hashable, deque[Event]] = {}
        self._seq = itertools.count()
        self.strategy = strategy if strategy is not None else AsPosted()

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @strategy.setter
    def strategy(self, strategy: Strategy) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a playground.runtime.scheduler.Strategy, not "
                            f"{type(strategy).__name__}")
        self._strategy = strategy
        self.eager = strategy.eager

    @property
    def pending(self) -> bool:
        return bool(self._queues)

    def post(self, source: Hashable, what: str, action: Callable[[], None]) -> None:
        """`action` is a state change `source` caused; it runs now (eager strategy) or when its turn comes."""
        if self.eager:
            action()
            return
        self._queues.setdefault(source, deque()).append(Event(next(self._seq), source, what, action))

    def run_pending(self) -> bool:
        """Run every held event, one at a time, in the strategy's order; whether any ran."""
        ran: list[Event] = []
        while self._queues:
            ready = sorted((q[0] for q in self._queues.values()), key=lambda e: e.seq)
            if ran and self._strategy.yields(ready, ran):
                return True  # the rest when the engine is idle again (see Waiting._quiesce)
            event = ready[self._strategy.choose(ready)]
            queue = self._queues[event.source]
            queue.popleft()
            if not queue:
                del self._queues[event.source]
            event.action()
            ran.append(event)
        return bool(ran)
