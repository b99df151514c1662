"""The schedule explorer: run a scenario under many orders Restate allows, and gather what each order ends in.

Each run is a fresh `pg.Runtime` whose scheduler asks an `Explorer` strategy at every decision the engine's
seam leaves open (runtime/scheduler.py): which sender's next event runs (enqueues of new invocations, each
ingress request a sender of its own (runtime/requests.py), starts of runnable attempts, timers due together),
and whether the attempts already started run first (`Strategy.yields`). A decision with one option is no
decision. A schedule is the list of the picks at the decisions with two or more options, written "1.0.2" (""
is the default: the oldest event first, never yielding); replaying it reproduces the run exactly (the ids are
seeded and the clock virtual).
See docs/explore.md for what is explored and what is not.
"""

from __future__ import annotations

import inspect
import random as random_module
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from .errors import DeadlockError, StuckError
from .facade import Runtime
from .runtime.scheduler import AsPosted, Event, Strategy

STRATEGIES = ("exhaustive", "random", "pct")
SCHEDULE_RE = re.compile(r"^(\d+(\.\d+)*)?$")
SHRINK_RUNS = 200  # the most extra runs spent shrinking one violation
Scenario = Callable[[Runtime], Awaitable[Any]]
Chooser = Callable[[int, Sequence[Any]], int]  # (decision number, the options' sources) -> pick
YIELD = ("yield", "let the started attempts run first")  # the option beside the ready events


EVERYTHING = ("everything",)  # the footprint of letting started attempts run: dependent on every event
INVOCATION_ID = re.compile(r"inv_[0-9A-Za-z]+")


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
        return frozenset(o for o in options
                         if EVERYTHING not in (mine, self._footprint(o)) and self._footprint(o) != mine)

    def yields(self, ready: Sequence[Event], ran: Sequence[Event]) -> bool:
        if not any(isinstance(e.source, tuple) and e.source[0] in ("start", "timer") for e in ran):
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
    """What an option touches. An enqueue (also a delayed send arriving) touches the key of an object's or
    workflow's invocation (its lock and inbox), else only that invocation; a start, a retry or a sleep's
    end touches only its invocation (its lock, if any, is already held); letting started attempts run, or
    anything not known, touches everything."""
    def footprint(opt: Any) -> Any:
        found = INVOCATION_ID.search(opt[1]) if opt != YIELD else None
        if found is None:
            return EVERYTHING
        if not opt[1].startswith(("enqueue ", "delayed start ")):
            return found.group()
        try:
            target = rt.invocation(found.group()).target
        except (KeyError, ValueError):
            return EVERYTHING
        return ("key", target.service, target.key) if target.key is not None else found.group()
    return footprint


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


@dataclass
class Outcome:
    """One distinct final result: what `observe` returned, how many schedules reached it, one schedule that
    replays it (the one closest to the default order), and the error the scenario raised, if any."""

    value: Any
    count: int
    schedule: str
    error: BaseException | None = None
    deadlocked: bool = False
    violation: str | None = None  # why the invariant failed (None: it held, or there is none)
    timelines: list[Any] = field(default_factory=list, repr=False)  # per keyed service, of `schedule`'s run

    def html(self) -> str:
        """This outcome with its per-key timelines, and its cycle if it deadlocked."""
        return outcome_column(self)

    def __repr__(self) -> str:
        extra = f", error={type(self.error).__name__}" if self.error is not None else ""
        extra += f", violation={self.violation!r}" if self.violation is not None else ""
        return f"Outcome(value={self.value!r}, count={self.count}, schedule={self.schedule!r}{extra})"


@dataclass
class Exploration:
    """What `pg.explore` found: the outcomes, most frequent first, and those that break the invariant."""

    scenario: Scenario
    services: list[Any]
    strategy: str
    schedules: int
    complete: bool
    outcomes: list[Outcome]
    violations: list[Outcome] = field(default_factory=list)
    redundant: int = 0  # exhaustive runs that turned out to repeat an order already covered (not counted)

    async def replay(self, outcome: Outcome | str) -> Runtime:
        """A live runtime in exactly the final state of `outcome` (or of a schedule string)."""
        schedule = outcome.schedule if isinstance(outcome, Outcome) else outcome
        return await replay(self.scenario, services=self.services, schedule=schedule)

    def __repr__(self) -> str:
        return (f"Exploration({self.strategy}: {self.schedules} schedules, complete={self.complete}, "
                f"{len(self.outcomes)} outcomes, {len(self.violations)} violations)")

    def _repr_html_(self) -> str:
        return outcomes_html(self)

    def table_html(self) -> str:
        return table_html(self)

    def dashboard(self) -> Any:
        """The explore view: the outcomes, one chosen outcome's timelines (and cycle), and a button that
        replays it into a live runtime whose dashboard opens below."""
        from .widgets import ExploreView  # widgets load on first use (cold start)

        return ExploreView(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        return {"text/html": outcomes_html(self), "text/plain": repr(self)}


def outcomes_html(ex: Exploration, limit: int = 12) -> str:
    """The outcomes as a table (value, count, error, invariant, the schedule that replays each), then each
    outcome's per-key timelines side by side, and a deadlocked outcome's cycle."""
    columns = "".join(outcome_column(o) for o in ex.outcomes[:limit])
    more = f"<p>(timelines of the first {limit} outcomes)</p>" if len(ex.outcomes) > limit else ""
    return f"{table_html(ex)}<div style='display:flex;gap:12px;overflow-x:auto'>{columns}</div>{more}"


def table_html(ex: Exploration) -> str:
    """What ran (strategy, schedules, complete or not) and the table of outcomes, without the timelines."""
    head = (f"<p><b>{escape(ex.strategy)}</b>: {ex.schedules} schedules, "
            f"{'complete' if ex.complete else 'stopped before covering every schedule'}, "
            f"{len(ex.outcomes)} outcomes, {len(ex.violations)} violating the invariant</p>")
    rows = "".join(
        f"<tr><td><code>{escape(repr(o.value))}</code></td><td>{o.count}</td>"
        f"<td>{escape(type(o.error).__name__ + ': ' + str(o.error).splitlines()[0]) if o.error else ''}</td>"
        f"<td>{escape(o.violation or '')}</td><td><code>{escape(repr(o.schedule))}</code></td></tr>"
        for o in ex.outcomes)
    return (f"{head}<table><thead><tr><th>outcome</th><th>schedules</th><th>error</th><th>invariant broken</th>"
            f"<th>schedule (replay it)</th></tr></thead><tbody>{rows}</tbody></table>")


def outcome_column(o: Outcome) -> str:
    cycle = ""
    if isinstance(o.error, DeadlockError) and o.error.deadlock is not None:
        cycle = (f"<pre style='font-size:11px;white-space:pre-wrap;max-width:480px'>"
                 f"{escape(o.error.deadlock.describe())}</pre>")
    pictures = "".join(t.html(width=380) for t in o.timelines)
    return (f"<div style='flex:0 0 auto;min-width:380px'><b><code>{escape(repr(o.value))}</code></b> "
            f"x{o.count}{cycle}{pictures}</div>")


def timelines_of(rt: Runtime) -> list[Any]:
    """The per-key timeline of each object or workflow service the run touched."""
    keyed = sorted({inv.target.service for inv in rt.all_invocations() if inv.target.key is not None})
    from . import render  # drawing loads on first use (cold start)

    return [render.timeline(rt, service) for service in keyed]


@dataclass
class Run:
    schedule: str
    picks: list[int]
    options: list[int]
    value: Any
    error: BaseException | None
    violation: str | None
    rt: Runtime
    branches: list[tuple[list[int], frozenset[Any]]]
    blocked: bool


async def run_once(scenario: Scenario, services: Sequence[Any], chooser: Chooser,
                   observe: Callable[[Runtime], Any] | None, invariant: Callable[[Runtime], Any] | None,
                   script_len: int = 0, sleep: frozenset[Any] | None = None) -> Run:
    """One schedule: a fresh runtime, the scenario, settle, then observe and check."""
    rt = Runtime(*services)
    strategy = Explorer(chooser, script_len, sleep, footprint_in(rt) if sleep is not None else None)
    rt.scheduler.strategy = strategy
    error: BaseException | None = None
    try:
        await started(scenario, rt)
        await rt.settle()
    except (DeadlockError, StuckError) as exc:
        error = exc
    except BaseException:
        rt.close("the scenario raised")  # a bug in the scenario: nothing of this run goes on
        raise
    if error is None and (cycles := rt.deadlocks()):  # sends only: nothing awaited the cycle, it stands
        first = cycles[0]
        members = ", ".join(m.target for m in first.members)
        error = DeadlockError(f"the run ended in a deadlock of {members}:\n{first.describe()}",
                              first.invocation_ids[0], first)
    value = observed(rt, observe, error)
    return Run(strategy.schedule, strategy.picks, strategy.options, value, error, broken(rt, invariant), rt,
               strategy.branches, strategy.blocked)


async def started(scenario: Scenario, rt: Runtime) -> None:
    awaitable = scenario(rt)
    if not inspect.isawaitable(awaitable):
        raise TypeError(f"scenario must be an async function of a runtime (async def scenario(rt): ...); "
                        f"it returned {type(awaitable).__name__}, not an awaitable")
    await awaitable


def observed(rt: Runtime, observe: Callable[[Runtime], Any] | None, error: BaseException | None) -> Any:
    if observe is None:
        return None
    try:
        return observe(rt)
    except Exception:
        if error is not None:
            return None  # a deadlocked run may not have the state observe reads
        raise


def broken(rt: Runtime, invariant: Callable[[Runtime], Any] | None) -> str | None:
    """Why the invariant fails on `rt` (it returned False, or raised), or None."""
    if invariant is None:
        return None
    try:
        ok = invariant(rt)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "the invariant returned False" if ok is False else None


def outcome_key(run: Run) -> tuple[Any, ...]:
    try:
        hash(run.value)
        value: Any = run.value
    except TypeError:
        value = repr(run.value)
    return value, type(run.error).__name__ if run.error else None, run.violation is not None


def scripted(script: Sequence[int]) -> Chooser:
    return lambda step, sources: script[step] if step < len(script) else 0


def seeded_random(rng: random_module.Random) -> Chooser:
    return lambda step, sources: rng.randrange(len(sources))


def pct(rng: random_module.Random, depth: int, steps: int) -> Chooser:
    """PCT (Burckhardt et al.): each source a random priority, the highest goes; at depth-1 random decisions
    the one about to go drops below every other."""
    priorities: dict[Any, float] = {}
    changes = {rng.randrange(max(steps, 1)): -float(i + 1) for i in range(depth - 1)}

    def choose(step: int, sources: Sequence[Any]) -> int:
        for s in sources:
            priorities.setdefault(s, rng.random())
        best = max(range(len(sources)), key=lambda i: priorities[sources[i]])
        if step in changes:
            priorities[sources[best]] = changes[step]
            best = max(range(len(sources)), key=lambda i: priorities[sources[i]])
        return best
    return choose


async def explore(scenario: Scenario, services: Iterable[Any] = (), strategy: str = "exhaustive",
                  runs: int = 1000, seed: int = 0, observe: Callable[[Runtime], Any] | None = None,
                  invariant: Callable[[Runtime], Any] | None = None, reduce: bool = True) -> Exploration:
    """Run `scenario` (an async function of a fresh runtime) under many schedules Restate allows: every one
    ("exhaustive", depth first, at most `runs`; `reduce`: orders that differ only in independent events run
    once), or `runs` seeded random ones ("random", "pct"). `observe(rt)` says what an outcome is;
    `invariant(rt)` returning False or raising marks it a violation."""
    services = check_args(scenario, services, strategy, runs, seed, observe, invariant)
    found: dict[tuple[Any, ...], Outcome] = {}
    if strategy == "exhaustive":
        count, redundant, complete = await exhaustive(scenario, services, runs, observe, invariant, reduce, found)
    else:
        count, redundant, complete = await sampled(scenario, services, strategy, runs, seed, observe, invariant,
                                                   found)
    outcomes = sorted(found.values(), key=lambda o: -o.count)  # stable: ties in the order first found
    for key, o in found.items():
        if o.violation is not None:
            await shrink(scenario, services, o, key, observe, invariant)
    return Exploration(scenario, services, strategy, count, complete, outcomes,
                       [o for o in outcomes if o.violation is not None], redundant)


async def exhaustive(scenario: Scenario, services: list[Any], runs: int, observe: Callable[[Runtime], Any] | None,
                     invariant: Callable[[Runtime], Any] | None, reduce: bool,
                     found: dict[tuple[Any, ...], Outcome]) -> tuple[int, int, bool]:
    """Depth first over the decisions; with `reduce`, sleep sets skip orders of independent events."""
    stack: list[tuple[list[int], frozenset[Any] | None]] = [([], frozenset() if reduce else None)]
    count = redundant = 0
    while stack and count + redundant < runs:
        script, sleep = stack.pop()
        run = await run_once(scenario, services, scripted(script), observe, invariant, len(script), sleep)
        run.rt.close("the explorer has finished with this run")
        if sleep is not None:
            stack.extend(reversed(run.branches))
        else:
            stack.extend((run.picks[:step] + [other], None) for step in range(len(script), len(run.options))
                         for other in range(run.options[step] - 1, 0, -1))
        if run.blocked:
            redundant += 1  # every option asleep: an order already covered
            continue
        count += 1
        record(found, run)
    return count, redundant, not stack


async def sampled(scenario: Scenario, services: list[Any], strategy: str, runs: int, seed: int,
                  observe: Callable[[Runtime], Any] | None, invariant: Callable[[Runtime], Any] | None,
                  found: dict[tuple[Any, ...], Outcome]) -> tuple[int, int, bool]:
    """`runs` schedules, each decision seeded: uniformly ("random") or by PCT's priorities."""
    rng = random_module.Random(seed)
    longest = 8  # PCT's estimate of the number of decisions, updated as runs show more
    for _ in range(runs):
        chooser = seeded_random(rng) if strategy == "random" else pct(rng, 3, longest)
        run = await run_once(scenario, services, chooser, observe, invariant)
        run.rt.close("the explorer has finished with this run")
        longest = max(longest, len(run.options))
        record(found, run)
    return runs, 0, False


def record(found: dict[tuple[Any, ...], Outcome], run: Run) -> None:
    key = outcome_key(run)
    o = found.get(key)
    if o is None:
        found[key] = Outcome(run.value, 1, run.schedule, run.error, isinstance(run.error, DeadlockError),
                             run.violation, timelines_of(run.rt))
        return
    o.count += 1
    if deviation(run.schedule) < deviation(o.schedule):
        o.schedule, o.timelines = run.schedule, timelines_of(run.rt)


async def shrink(scenario: Scenario, services: Sequence[Any], outcome: Outcome, key: tuple[Any, ...],
                 observe: Callable[[Runtime], Any] | None, invariant: Callable[[Runtime], Any] | None) -> None:
    """Greedily move a violating outcome's schedule toward the default order (picks to 0, or smaller) while
    it still ends in the same violating outcome `key` (Hypothesis-style shrinking)."""
    best = parse_schedule(outcome.schedule)
    budget = SHRINK_RUNS
    improved = True
    while improved and budget > 0:
        improved = False
        for i in [i for i, p in enumerate(best) if p]:
            for smaller in range(best[i]):
                if budget <= 0:
                    break
                candidate = best[:i] + [smaller] + best[i + 1:]
                budget -= 1
                try:
                    run = await run_once(scenario, services, scripted(candidate), observe, invariant)
                except ValueError:
                    continue  # that change alters which decisions come later; a later pick no longer fits
                run.rt.close("the explorer has finished with this run")
                if outcome_key(run) == key and deviation(run.schedule) < deviation(format_schedule(best)):
                    best = parse_schedule(run.schedule)
                    outcome.schedule, outcome.timelines = run.schedule, timelines_of(run.rt)
                    improved = True
                    break
            if improved:
                break


async def replay(scenario: Scenario, services: Iterable[Any] = (), schedule: str = "") -> Runtime:
    """Run `scenario` once under `schedule` (an outcome's .schedule) and return the live runtime, in exactly
    that run's final state: the same journals, ids and times. From there on it runs in the default order."""
    if not callable(scenario):
        raise TypeError(f"scenario must be an async function of a runtime, not {type(scenario).__name__}")
    picks = parse_schedule(schedule)
    services = list(services)
    run = await run_once(scenario, services, scripted(picks), None, None)
    if any(picks[len(run.picks):]):
        run.rt.close("the schedule did not fit the scenario")
        raise ValueError(f"schedule {schedule!r} has more picks than the scenario has decisions "
                         f"({len(run.options)}): it was made for another scenario")
    if not run.rt.scheduler.pending:
        run.rt.scheduler.strategy = AsPosted()  # what the cells run next runs in the engine's own order
    return run.rt


def check_args(scenario: Any, services: Any, strategy: Any, runs: Any, seed: Any, observe: Any,
               invariant: Any) -> list[Any]:
    """Bad arguments are told at once, before any run."""
    if not callable(scenario):
        raise TypeError(f"scenario must be an async function of a runtime (async def scenario(rt): ...), "
                        f"not {type(scenario).__name__}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, not {strategy!r}")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ValueError(f"runs must be a positive int (the most schedules to run), not {runs!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int (the same seed gives the same schedules), not {type(seed).__name__}")
    for name, f in (("observe", observe), ("invariant", invariant)):
        if f is not None and not callable(f):
            raise TypeError(f"{name} must be a function of the final runtime, or None, not {type(f).__name__}")
    if isinstance(services, (str, bytes)) or not isinstance(services, Iterable):
        raise TypeError(f"services must be a list of restate services, not {type(services).__name__}")
    return list(services)
