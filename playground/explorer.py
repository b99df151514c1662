"""The schedule explorer: run a scenario under many orders Restate allows, and gather what each order ends in.

Each run is a fresh `pg.Runtime` whose scheduler asks an `Explorer` strategy at every decision the engine's
seam leaves open (runtime/scheduler.py): which sender's next event runs (enqueues of new invocations, each
ingress request a sender of its own (runtime/requests.py), starts of runnable attempts, timers due together),
and whether the attempts already started run first (`Strategy.yields`). A decision with one option is no
decision. A schedule is the list of the picks at the decisions with two or more options, written "1.0.2" (""
is the default: the oldest event first, never yielding); replaying it reproduces the run exactly (the ids are
seeded and the clock virtual).
See docs/explore.md for what is explored and what is not. This module holds the entry points (pg.explore,
pg.replay) and what they return; the strategy and schedules are in explorer_schedules.py, the searches and
shrinking in explorer_search.py, the outcomes and their HTML in explorer_report.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .explorer_report import Outcome, outcomes_html, table_html
from .explorer_schedules import parse_schedule
from .explorer_search import Scenario, exhaustive, run_once, sampled, scripted, shrink
from .facade import Runtime
from .runtime.scheduler import AsPosted

STRATEGIES = ("exhaustive", "random", "pct")


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
