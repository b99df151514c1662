"""How the explorer searches: one run of a scenario under a chooser (`run_once`), the choosers (scripted,
seeded random, PCT), the exhaustive search (depth first, with sleep sets) and the sampled ones, and
shrinking a violation's schedule toward the default order.
"""

from __future__ import annotations

import inspect
import random as random_module
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import DeadlockError, StuckError
from .explorer_report import Outcome, timelines_of
from .explorer_schedules import Chooser, Explorer, deviation, footprint_in, format_schedule, parse_schedule
from .facade import Runtime

SHRINK_RUNS = 200  # the most extra runs spent shrinking one violation
Scenario = Callable[[Runtime], Awaitable[Any]]


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
