"""What the explorer shows of what it found: `Outcome`, one distinct final result, and the HTML of an
exploration (its table of outcomes, each outcome's per-key timelines and a deadlock's cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from .errors import DeadlockError

if TYPE_CHECKING:
    from .explorer import Exploration
    from .facade import Runtime


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
