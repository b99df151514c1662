"""The explorer's side of the scheduler's seam: the `Explorer` strategy, which makes every real decision
of a run (two or more options) by a chooser and records the picks, pruning by partial order (sleep sets)
in an exhaustive search; what an option touches (`footprint_in`); and schedules, the picks as a string
such as "1.0.2". The searches that run it are in explorer_search.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .runtime.requests import promise_named
from .runtime.scheduler import Event, Strategy

if TYPE_CHECKING:
    from .facade import Runtime

SCHEDULE_RE = re.compile(r"^(\d+(\.\d+)*)?$")
Chooser = Callable[[int, Sequence[Any]], int]  # (decision number, the options' sources) -> pick
YIELD = ("yield", "let the started attempts run first")  # the option beside the ready events
EVERYTHING = ("everything",)  # the footprint of letting started attempts run: dependent on every event
INVOCATION_ID = re.compile(r"inv_[0-9A-Za-z]+")
# the sources whose events may set handler code running: a start, a timer (a sleep's end wakes its attempt),
# an operation (a cancel's signal, an awakeable completed, wakes one)
CODE_STARTERS = ("start", "timer", "operation")


class Explorer(Strategy):
    """A strategy whose every real decision (two or more options) is made by `chooser` and recorded.

    With `sleep` (a set of options, for the exhaustive search) it also prunes by partial order: past its
    script it avoids options whose orders were covered elsewhere (a sleep set), and records the alternatives
    still to explore, each with its own sleep set, in `branches`. `blocked` says every option was asleep:
    the run repeats an order already covered."""

    def __init__(self, chooser: Chooser, script_len: int = 0, sleep: frozenset[Any] | None = None,
                 footprint: Callable[[Any], Any] | None = None) -> None:
        self.chooser = chooser
        self.picks: list[int] = []
        self.options: list[int] = []
        self._pending: int | None = None  # a pick made in `yields` for the next `choose`
        self._script_len = script_len
        self._sleep = sleep
        self._footprint = footprint or (lambda option: EVERYTHING)
        self.branches: list[tuple[list[int], frozenset[Any]]] = []
        self.blocked = False

    def _decide(self, options: Sequence[Any]) -> int:
        if len(options) == 1:
            return 0
        step = len(self.picks)
        pick = self.chooser(step, options) if self._sleep is None or step < self._script_len else self._prune(options)
        if not 0 <= pick < len(options):
            raise ValueError(f"the schedule picks option {pick} at decision {step}, which has only "
                             f"{len(options)} options: this schedule was made for another scenario")
        self.picks.append(pick)
        self.options.append(len(options))
        return pick

    def _prune(self, options: Sequence[Any]) -> int:
        """Sleep sets (Godefroid): the first option not asleep goes; each other one is a branch to explore
        later, asleep there to the options before it that it does not depend on."""
        assert self._sleep is not None
        awake = [i for i, o in enumerate(options) if o not in self._sleep]
        if not awake:
            self.blocked = True
            return 0
        done = set(self._sleep)
        for i in awake[1:]:
            done.add(options[awake[awake.index(i) - 1]])
            self.branches.append((self.picks + [i], self._independent(done, options[i])))
        first = options[awake[0]]
        self._sleep = self._independent(self._sleep, first)
        return awake[0]

    def _independent(self, options: Iterable[Any], of: Any) -> frozenset[Any]:
        mine = self._footprint(of)
        return frozenset(o for o in options if apart(mine, self._footprint(o)))

    def yields(self, ready: Sequence[Event], ran: Sequence[Event]) -> bool:
        if not any(isinstance(e.source, tuple) and e.source[0] in CODE_STARTERS for e in ran):
            return False  # nothing this drain ran has started code: running it first changes nothing
        pick = self._decide([*map(option, ready), YIELD])
        if pick == len(ready):
            return True
        self._pending = pick
        return False

    def choose(self, ready: Sequence[Event]) -> int:
        if self._pending is not None:
            pick, self._pending = self._pending, None
            return pick
        return self._decide([option(e) for e in ready])

    @property
    def schedule(self) -> str:
        return format_schedule(self.picks)


def option(event: Event) -> tuple[Any, str]:
    """An event as an option: the same event in every run that reaches the same decision."""
    return event.source, event.what


def footprint_in(rt: Runtime) -> Callable[[Any], Any]:
    """What an option touches: a set of things (invocation ids, ("key", service, key)), or EVERYTHING. An
    enqueue (also a delayed send arriving) touches the key of an object's or workflow's invocation (its lock
    and inbox), else only that invocation; a start, a retry, a sleep's end, a pause, a resume or an
    awakeable completed touches only its invocation (its lock, if any, is already held); a cancel touches
    its invocation, its key and its callers (one that never started ends at once, answering them); a
    promise completed touches its workflow's key and every invocation of it still running (any of them may
    await it); a kill (it ends what the invocation waits on, and frees its lock), letting started attempts
    run, or anything not known, touches everything."""
    def footprint(opt: Any) -> Any:
        promise = promise_named(opt[1]) if opt != YIELD else None
        if promise is not None:
            return promise_footprint(rt, promise[0], promise[1])
        found = INVOCATION_ID.search(opt[1]) if opt != YIELD else None
        if found is None or opt[1].startswith("kill "):
            return EVERYTHING
        inv_id = found.group()
        if not opt[1].startswith(("enqueue ", "delayed start ", "cancel ")):
            return frozenset({inv_id})
        try:
            inv = rt.invocation(inv_id)
        except (KeyError, ValueError):
            return EVERYTHING
        place = ("key", inv.target.service, inv.target.key) if inv.target.key is not None else inv_id
        if opt[1].startswith("cancel "):
            return frozenset({inv_id, place, *(caller.id for caller, _cid, _how in inv.callers)})
        return frozenset({place})
    return footprint


def promise_footprint(rt: Runtime, workflow: str, key: str) -> frozenset[Any]:
    running = (inv.id for inv in rt.all_invocations()
               if not inv.completed and inv.target.service == workflow and inv.target.key == key)
    return frozenset({("key", workflow, key), *running})


def apart(a: Any, b: Any) -> bool:
    """Whether two footprints touch nothing in common (EVERYTHING touches something of every footprint)."""
    return a is not EVERYTHING and b is not EVERYTHING and a.isdisjoint(b)


def format_schedule(picks: Sequence[int]) -> str:
    """The picks as a string; trailing zeros (default picks) are left out, so each schedule has one spelling."""
    picks = list(picks)
    while picks and picks[-1] == 0:
        picks.pop()
    return ".".join(map(str, picks))


def parse_schedule(schedule: Any) -> list[int]:
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be a str such as '1.0.2' (an outcome's .schedule), not "
                        f"{type(schedule).__name__}")
    if not SCHEDULE_RE.match(schedule):
        raise ValueError(f"schedule must be numbers separated by dots such as '1.0.2' (or '' for the default "
                         f"order), not {schedule!r}")
    return [int(p) for p in schedule.split(".")] if schedule else []


def deviation(schedule: str) -> tuple[int, int, int]:
    """How far a schedule is from the default order: its non-default picks, their sum, its length."""
    picks = parse_schedule(schedule)
    return sum(1 for p in picks if p), sum(picks), len(picks)
