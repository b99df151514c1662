"""The scheduler: the one place that decides which event runs next where Restate leaves the order open.

Restate fixes some orders and leaves others open. Fixed: the messages one sender sends to a key reach it
in the order they were sent (a handler that sends A and then B: A is enqueued before B), and the messages
of one attempt's stream, and the notifications written to it, go in order. Open: how the messages of
different senders interleave when they reach a key at the same virtual instant, which of the runnable
attempts of different invocations starts first, which of the timers due together fires first, and whether
an attempt's message is handled before or after another attempt runs or a timer fires at the same instant,
and where an operation from a cell (a cancel, a kill, a pause, a resume, an awakeable or promise completed)
lands among the events already in flight.

The engine posts each state change here as an `Event` of a kind (KINDS) with its sender (its source). The
strategy says which kinds it decides (`Strategy.holds`); an event of a kind it does not hold runs at once,
on the call stack that posted it. Held events wait in one FIFO per source, taken in (virtual time,
sequence number) order, and the strategy picks which source's head goes next: so no strategy can reorder
one sender's events, and every interleaving Restate allows is one some strategy picks. The engine drains
held events only when no attempt is busy (see Waiter.quiesce): a run is then a sequence of decisions.

The default strategy, `AsPosted`, holds nothing: each event runs the moment it is posted, the order the
engine has always used (ids, times and stored outputs stay the same), at no cost per event. `Stepwise`
holds every kind and runs one attempt at a time: after an event that leaves an attempt busy (and the
notifications already waiting for that attempt, handed over with it as one chunk), the drain stops until
that attempt is blocked on the engine again.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

# What the engine posts: an invocation enqueued (also a delayed send arriving), an attempt started (a new
# invocation, a retry, a resume), a timer fired, a message from an attempt handled (its commands, run
# proposals, terminal message and the end of its stream), a notification handed to a live attempt, and
# an operation from a cell (rt.cancel, rt.kill, rt.pause, rt.resume, completing an awakeable or a promise).
KINDS = frozenset({"enqueue", "start", "timer", "message", "notify", "operation"})


@dataclass(slots=True)
class Event:
    """A state change waiting for its turn: who caused it, in which order it was posted, and what it does."""

    seq: int
    source: Hashable
    what: str
    action: Callable[[], None]
    kind: str = ""
    at: int = 0  # the virtual time (ms) it was posted at


class Strategy:
    """Asked which of the ready events runs next (each the oldest of its source). `eager`: run every event
    when it is posted, never asking. `holds`: the kinds of event it decides (the others run when posted);
    by default the ones the explorer drives: enqueues, starts, timers and operations from a cell.
    `one_at_a_time`: stop each drain after an event that left an attempt busy."""

    eager = False
    holds: frozenset[str] = frozenset({"enqueue", "start", "timer", "operation"})
    one_at_a_time = False

    def choose(self, ready: Sequence[Event]) -> int:
        """The index in `ready` (ordered by time and sequence number) of the event to run next."""
        return 0

    def yields(self, ready: Sequence[Event], ran: Sequence[Event]) -> bool:
        """Asked before each choice once this drain has run the events `ran`: True stops the drain here, so
        the attempts those events started run (and post what they send) before the rest of `ready`. A
        handler's sends can so come after a concurrent sender's, or before. Default: never."""
        return False


class AsPosted(Strategy):
    """The default: each event runs as it is posted, in the order the engine's call stack produces."""

    eager = True
    holds = frozenset()


class OldestFirst(Strategy):
    """Held until the instant is idle, then run oldest first (as posted, but through the queue)."""


class NewestSourceFirst(Strategy):
    """Held until the instant is idle, then the most recently posted source's oldest event first."""

    def choose(self, ready: Sequence[Event]) -> int:
        return len(ready) - 1


class Stepwise(Strategy):
    """Every kind of event through the queue, oldest first, one attempt at a time: after an event that
    leaves an attempt busy, that attempt runs until the SDK is blocked on the engine again (or it ends)
    before the next event is taken. A deterministic simulation's loop."""

    holds = KINDS
    one_at_a_time = True


class Scripted(Strategy):
    """Takes its choices from a script (index per decision; 0 once the script runs out) and records how
    many events were ready at each decision: enough to enumerate every allowed order, one run each.
    `holds`: the kinds it decides (default: those of `Strategy`)."""

    def __init__(self, script: Sequence[int] = (), holds: Iterable[str] | None = None) -> None:
        self.script = list(script)
        self.options: list[int] = []
        self.ready: list[list[Event]] = []  # what was ready at each decision
        if holds is not None:
            self.holds = check_kinds(holds)

    def choose(self, ready: Sequence[Event]) -> int:
        step = len(self.options)
        self.options.append(len(ready))
        self.ready.append(list(ready))
        return self.script[step] if step < len(self.script) else 0


def check_kinds(holds: Iterable[str]) -> frozenset[str]:
    """The kinds a strategy holds, checked: a bad one is a ValueError naming the kinds there are."""
    if isinstance(holds, str) or not isinstance(holds, Iterable) or set(holds) - KINDS:
        raise ValueError(f"holds must be a set of event kinds out of {sorted(KINDS)}, not {holds!r}")
    return frozenset(holds)


_ORDER = attrgetter("at", "seq")  # events are taken in (virtual time, sequence number) order


class Scheduler:
    """One FIFO per source; `run_pending` drains them in the strategy's order. `now` gives the virtual time
    events are stamped with; `busy` says whether an attempt is running handler code (for one_at_a_time)."""

    def __init__(self, strategy: Strategy | None = None, now: Callable[[], int] | None = None,
                 busy: Callable[[], bool] | None = None) -> None:
        self._queues: dict[Hashable, deque[Event]] = {}
        self._seq = itertools.count()
        self._now = now or (lambda: 0)
        self.busy = busy or (lambda: False)
        self.ran = 0  # events taken from the queue so far (the benchmark's events/s)
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
        # the kinds held in the queue (read by the engine where posting would cost something per event)
        self.held = frozenset() if strategy.eager else check_kinds(strategy.holds)

    @property
    def pending(self) -> bool:
        return bool(self._queues)

    def clear(self) -> None:
        """Drop every held event (the tables they act on are being replaced: a restart, a restore)."""
        self._queues.clear()

    def post(self, source: Hashable, what: str, action: Callable[[], None], kind: str = "",
             at: int | None = None) -> None:
        """`action` is a state change `source` caused; it runs now (a kind the strategy does not hold) or
        when its turn comes. `kind` defaults to the first word of `what` ("enqueue ...", "start ..."); `at`
        (virtual ms) to now (a timer's is its due time)."""
        if self.eager:
            action()
            return
        kind = kind or what.split(" ", 1)[0]
        if kind in KINDS and kind not in self.held:  # (a kind the engine does not post: always held)
            action()
            return
        event = Event(next(self._seq), source, what, action, kind, self._now() if at is None else at)
        self._queues.setdefault(source, deque()).append(event)

    def _next_is_notify(self, source: Hashable) -> bool:
        queue = self._queues.get(source)
        return queue is not None and queue[0].kind == "notify"

    def run_pending(self) -> bool:
        """Run held events, one at a time, in the strategy's order, until none is left, the strategy yields,
        or (one_at_a_time) an attempt is busy (an event woke it, or it ran already); whether any ran."""
        ran: list[Event] = []
        strategy = self._strategy
        while self._queues:
            if strategy.one_at_a_time and self.busy():
                if not (ran and ran[-1].kind == "notify" and self._next_is_notify(ran[-1].source)):
                    break  # an attempt runs until it is blocked on the engine again; then the next event
                # the notifications waiting for the attempt just woken go with it, as one chunk (as the
                # default hands them over when they are written before it reads again)
                ready = [self._queues[ran[-1].source][0]]
            elif len(self._queues) == 1:
                ready = [q[0] for q in self._queues.values()]
            else:
                ready = sorted((q[0] for q in self._queues.values()), key=_ORDER)
            if ran and strategy.yields(ready, ran):
                break  # the rest when the engine is idle again (see Waiter.quiesce)
            event = ready[strategy.choose(ready)]
            queue = self._queues[event.source]
            queue.popleft()
            if not queue:
                del self._queues[event.source]
            event.action()
            ran.append(event)
        self.ran += len(ran)
        return bool(ran)
