"""Fault injection, for teaching and tests: crash an attempt after a given journal entry, make a ctx.run
lose its result some number of times, or drop the deployment. Each failure is an ordinary failed attempt:
Restate's retry policy applies, and it shows in the journal view as a transient error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from restate.handler import handler_from_callable

if TYPE_CHECKING:
    from .core import Engine as Runtime
    from .model import Invocation


def _pattern(target: Any) -> str:
    """An invocation id, 'Service/handler', 'Service/key/handler', or a decorated handler."""
    if isinstance(target, str):
        return target
    try:
        h: Any = handler_from_callable(target)
    except (ValueError, TypeError, KeyError):
        raise TypeError(f"target must be an invocation id, 'Service/handler', 'Service/key/handler' or a "
                        f"handler, not {target!r}") from None
    return f"{h.service_tag.name}/{h.name}"


def _check_int(what: str, value: Any, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int >= {least}, not {type(value).__name__}")
    if value < least:
        raise ValueError(f"{what} must be >= {least} (got {value})")


def _matches(pattern: str | None, inv: Invocation) -> bool:
    if pattern is None:
        return True
    t = inv.target
    return pattern in (inv.id, str(t), f"{t.service}/{t.handler}")


@dataclass
class _Rule:
    pattern: str | None
    times: int
    entry: int = 0  # crash rules: crash once the journal has more than this index
    run_name: str = ""  # run rules


class Faults:
    """`rt.faults`: inject failures into the next attempts of matching invocations."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._crashes: list[_Rule] = []
        self._runs: list[_Rule] = []

    def crash_after(self, target: Any, entry: int, times: int = 1) -> None:
        """Crash the attempt of a matching invocation right after journal entry `entry` is stored (the entry
        stays: the next attempt replays it), `times` times."""
        _check_int("entry", entry, 0)
        _check_int("times", times, 1)
        self._crashes.append(_Rule(_pattern(target), times, entry=entry))

    def fail_run(self, name: str, times: int = 1, target: Any = None) -> None:
        """Lose the result of `ctx.run(name, ...)` `times` times: the closure has run, but the attempt fails
        before its result is stored, so the next attempt runs it again (ctx.run is at least once)."""
        if not isinstance(name, str):
            raise TypeError(f"name must be the str name given to ctx.run, not {type(name).__name__}")
        _check_int("times", times, 1)
        self._runs.append(_Rule(_pattern(target) if target is not None else None, times, run_name=name))

    def drop_deployment(self) -> int:
        """Abort every attempt in flight, as if the service's process died; returns how many."""
        return self._rt._attempts.abort_all("the deployment went away (injected by rt.faults.drop_deployment)")

    async def restart(self) -> None:
        """Crash the whole runtime and bring it back from its store, as after the kernel died: attempts in
        flight are lost mid-step, everything in memory is rebuilt from the stored records, and invocations
        that were running replay their journals. With the default in-memory store the records are the
        runtime's own tables; with a SQLite store, what is in the file."""
        await self._rt._recovery.restart()

    def clear(self) -> None:
        self._crashes.clear()
        self._runs.clear()

    @property
    def armed(self) -> bool:
        """Whether any rule is set (checked on every SDK message, so it must be cheap)."""
        return bool(self._crashes or self._runs)

    # ---------------------------------------------------------------- asked by the runtime
    def crash_now(self, inv: Invocation) -> str | None:
        index = len(inv.journal) - 1
        for rule in self._crashes:
            if rule.times > 0 and index >= rule.entry and _matches(rule.pattern, inv):
                rule.times -= 1
                return f"injected crash after journal entry {index} (rt.faults.crash_after)"
        return None

    def run_fails(self, inv: Invocation, run_name: str) -> str | None:
        for rule in self._runs:
            if rule.times > 0 and rule.run_name == run_name and _matches(rule.pattern, inv):
                rule.times -= 1
                return f"injected loss of the result of ctx.run {run_name!r} (rt.faults.fail_run)"
        return None
