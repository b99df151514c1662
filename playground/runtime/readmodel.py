"""The read model: what the layers above the engine (tables and SQL, pictures, widgets, the HTTP admin API)
read of it, in Restate's terms, through public functions. This module is the one place outside the engine's
own parts that knows where the engine keeps its tables; the layers above never read them directly.

Every function returns the engine's live records or a copy of a table's entries: read them, do not change
them (the operations module changes the engine)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .common import Registered
from .model import Failure, Invocation

if TYPE_CHECKING:
    from .core import Engine

Key = tuple[str, str]  # (service, key) of an object or workflow


def invocation(rt: Engine, invocation_id: str) -> Invocation | None:
    """One invocation by id, or None when the engine does not know it (never existed, or expired)."""
    return rt._invocations.get(invocation_id)


def change_stamp(rt: Engine) -> tuple[int, int, int]:
    """Changes whenever something a view shows may have changed: deliveries, starts and completions, the
    clock, and the number of invocations kept."""
    return (rt._progress, rt._clock.now_ms(), len(rt._invocations))


def services(rt: Engine) -> dict[str, Registered]:
    """Each registered service's newest revision, by name, in registration order."""
    return dict(rt._registry.services)


def manifest(rt: Engine, service: str) -> dict[str, Any]:
    """The service's entry in its latest discovery manifest (empty when unknown)."""
    return rt._registry.manifests.get(service, {})


def states(rt: Engine) -> list[tuple[Key, dict[str, bytes]]]:
    """Every object's and workflow's K/V state, by (service, key) in order (Restate's `state`)."""
    return sorted(rt._state.items())


def state_of(rt: Engine, service: str, key: str) -> dict[str, bytes]:
    """One object's or workflow's K/V state, raw bytes (a copy)."""
    return dict(rt._state.get((service, key), {}))


def inboxes(rt: Engine) -> list[tuple[Key, list[Invocation]]]:
    """Each key's queue of invocations waiting for its lock, in order (Restate's `sys_inbox`)."""
    return [(lk, [inv for inv in queue if not inv.completed]) for lk, queue in rt._keys.inboxes.items()]


def lock_holders(rt: Engine) -> list[tuple[Key, str]]:
    """Each locked key and the id of the invocation holding it (`sys_keyed_service_status`)."""
    return list(rt._keys.locks.items())


def idempotency_keys(rt: Engine) -> list[tuple[tuple[str, str, str, str], str]]:
    """((service, key, handler, idempotency key), invocation id) of every retained key (`sys_idempotency`)."""
    return list(rt._records.idempotency.items())


def find_idempotent(rt: Engine, service: str, key: str | None, handler: str, idem: str) -> str | None:
    """The invocation id an idempotency key points at."""
    return rt._records.idempotency.get((service, key or "", handler, idem))


def find_workflow_run(rt: Engine, service: str, key: str) -> str | None:
    """The invocation id of a workflow's run."""
    return rt._records.workflow_runs.get((service, key))


def completed_promises(rt: Engine) -> Iterable[tuple[Key, str, bytes | Failure]]:
    """(workflow, promise name, value or failure) of every completed durable promise (`sys_promise`)."""
    for wk, table in rt._records.promises.items():
        for name, value in table.items():
            yield wk, name, value


def awaited_promises(rt: Engine) -> list[tuple[Key, str]]:
    """(workflow, promise name) of every durable promise someone awaits that is not completed."""
    return [((s, k), name) for (s, k, name), waiters in rt._records.promise_waiters.items() if waiters]


def wait_for_edges(rt: Engine) -> list[tuple[Any, Any, str]]:
    """The wait-for graph's edges (from, to, kind): kind is call, attach, queued or holds; a lock is the
    node (service, key)."""
    return list(rt._wait.edges())
