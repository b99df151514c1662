"""Coming back from the records: how the runtime's tables are rebuilt from what a store holds (after the
process died, or rt.faults.restart), and what happens to invocations whose handlers are not registered.

A restore rebuilds the runtime's tables from the records alone, as Restate's partition processor does
after a restart: locks from the invocations that run, inboxes in their stored order, timers at their
original times (delayed starts, sleeps, retries, retention), callers waiting on callees, and promise
waiters from the journals. Invocations that were running start a new attempt and replay their journal,
so a `ctx.run` whose result was stored never runs again; suspended ones stay suspended.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import MissingHandlerWarning, StoreError
from ..protocol import messages
from ..protocol.deployment import parse_manifest
from . import ids
from .clock import Clock
from .commands import Commands
from .common import TYPE_IDS
from .invocations import Lifecycle
from .journal import answered_completion_ids, call_target_id
from .keys import Keys
from .model import Invocation, JournalEntry, Target, TransientError
from .records import Records
from .registry import Registry
from .store import MemoryStore, SqliteStore
from .store_records import Snapshot, invocation_fields
from .waiting import Waiter


class RestoreHost(Protocol):
    """What a restore reads and rebuilds of the engine: its tables (read each time: a restore replaces
    them), the commit hook that ends an event, and how it starts and schedules invocations."""

    _closed: str | None
    _commit: Callable[[], None]
    _seed: int
    _seeded_ids: ids.SeededIds
    _state: dict[tuple[str, str], dict[str, bytes]]
    _to_start: list[Invocation]

    @property
    def _store(self) -> MemoryStore | SqliteStore: ...
    @property
    def _clock(self) -> Clock: ...
    @property
    def _invocations(self) -> dict[str, Invocation]: ...
    @property
    def _by_start_id(self) -> dict[bytes, Invocation]: ...
    @property
    def _dirty(self) -> set[Invocation]: ...
    @property
    def _keys(self) -> Keys: ...
    @property
    def _records(self) -> Records: ...
    @property
    def _registry(self) -> Registry: ...
    @property
    def _commands(self) -> Commands: ...
    @property
    def _waiter(self) -> Waiter: ...
    @property
    def _lifecycle(self) -> Lifecycle: ...

    def _now(self) -> int: ...


class Restorer:
    """The recovery part's restore (`Recovery.restorer`): the tables rebuilt from a snapshot's records,
    what they let go started, and invocations whose handler is not registered parked until `rebind`."""

    def __init__(self, host: RestoreHost) -> None:
        self.host = host

    def restore_stored(self, snap: Snapshot) -> None:
        """Restore from what a store file holds: a record the runtime cannot use is a StoreError (the file
        is closed, untouched), never an exception from deep inside."""
        try:
            self.restore(snap)
        except StoreError:
            raise
        except Exception as exc:
            raise self._store_corrupt(f"a stored record cannot be restored: {exc!r}") from None

    def restore(self, snap: Snapshot) -> None:
        """The engine's tables (emptied before) rebuilt from `snap`; what was running starts again."""
        self._restore_tables(snap)
        restored = [self._restored_invocation(rec, snap) for rec in snap.invocations]
        self._remember(restored)
        live = [inv for inv in restored if not inv.completed]
        for inv in sorted((i for i in restored if i.completed and i.expires_at is not None),
                          key=lambda i: (i.expires_at, i.completed_at)):
            self.host._lifecycle.schedule_expiry(inv)
        self._restore_locks(live)
        self.host._to_start.extend(self._resumed(live))
        self._warn_missing()
        self.start_restored()
        self.host._commit()

    def _restore_tables(self, snap: Snapshot) -> None:
        """The engine's own values, the services' manifests, the state and the promises."""
        meta = snap.meta
        if "now_ms" in meta:
            self.host._clock.restore(meta["now_ms"])
        self.host._seed = meta.get("seed", self.host._seed)
        # the id generator continues where it was: no id is ever reused
        self.host._seeded_ids = ids.SeededIds(self.host._seed, meta.get("ids_drawn", 0))
        self.host._keys.seq = meta.get("inbox_seq", 0)
        for name, manifest in snap.manifests.items():
            self.host._registry.restore(name, manifest, snap.revisions.get(name, 1))
        self.host._state = {k: dict(v) for k, v in snap.state.items()}
        self.host._records.promises = {k: dict(v) for k, v in snap.promises.items()}

    def _remember(self, restored: list[Invocation]) -> None:
        """The restored invocations in the tables, by id and start id; workflow runs and idempotency keys."""
        for inv in restored:
            self.host._invocations[inv.id] = inv
            self.host._by_start_id[inv.start_id] = inv
            key_s = inv.target.key or ""
            if inv.handler.ty == "WORKFLOW":
                self.host._records.remember_workflow_run((inv.target.service, key_s), inv.id)
            elif inv.idempotency_key is not None:
                self.host._records.remember_idempotent((inv.target.service, key_s, inv.target.handler,
                                                        inv.idempotency_key), inv.id)

    def _restore_locks(self, live: list[Invocation]) -> None:
        """Whoever started and has not finished holds its key; the rest queue in their stored order."""
        for inv in live:
            lk = inv.lock_key
            if lk is not None and inv.status not in ("pending", "scheduled"):
                self.host._keys.restore_holder(lk, inv)
        for inv in sorted((i for i in live if i.status == "pending" and i.lock_key is not None),
                          key=lambda i: i.inbox_seq):
            lk = inv.lock_key
            assert lk is not None
            self.host._waiter.on_edge(self.host._keys.restore_queued(lk, inv))

    def _resumed(self, live: list[Invocation]) -> list[Invocation]:
        """Who each live invocation waits for, its timers armed again; the invocations to start."""
        to_start: list[Invocation] = []
        for inv in live:
            self._restore_waits(inv)
            if inv.status == "scheduled":
                self.host._lifecycle.schedule_start(inv)
            elif inv.status == "backing-off" and inv.next_retry_at is not None:
                self.host._lifecycle.schedule_retry(inv)
            elif inv.status in ("running", "backing-off") or start_was_held(inv):  # running when the process
                to_start.append(inv)  # died; or parked; or its start was held
        to_start.extend(self.host._keys.start_free_heads())
        return to_start

    def _restored_invocation(self, rec: dict[str, Any], snap: Snapshot) -> Invocation:
        target = Target(rec["service"], rec["handler"], rec["key"])
        service, handler, deployment = self._bind(target)
        inv = Invocation(target=target, service=service, handler=handler, deployment=deployment, runtime=self.host,
                         **invocation_fields(rec))
        if rec["waiting_ids"] is not None:
            c, s, n = rec["waiting_ids"]
            inv.waiting_ids = (set(c), set(s), set(n))
        for index, (type_id, frame, at, due) in enumerate(snap.journals.get(inv.id, ())):
            try:
                msg = messages.parse(type_id, frame[8:])
            except Exception as exc:
                raise self._store_corrupt(f"journal entry {index} of invocation {inv.id} ({target}) cannot "
                                          f"be decoded: {exc}") from None
            inv.journal.append(JournalEntry(type_id, msg, at, frame, due))
        inv.errors = [TransientError(**e) for e in snap.errors.get(inv.id, ())]
        inv.last_failure = inv.errors[-1] if inv.errors else None
        if inv.completed:
            inv.callers = inv.waiters = ()
            inv.settle()  # kept compactly until its retention passes
        return inv

    def _bind(self, target: Target) -> tuple[Any, Any, Any]:
        """The registered service and handler for a restored invocation, else the stored manifest's (and no
        deployment: it waits until its service is registered)."""
        reg = self.host._registry.get(target.service)
        if reg is not None and target.handler in reg.info.handlers:
            return reg.info, reg.info.handlers[target.handler], reg.deployment
        manifest = self.host._registry.manifests.get(target.service)
        info = parse_manifest({"services": [manifest]})[target.service] if manifest else None
        if info is None or target.handler not in info.handlers:
            raise self._store_corrupt(f"an invocation of {target} has no stored service description")
        return info, info.handlers[target.handler], None

    def _store_corrupt(self, why: str) -> Exception:
        self.host._store.close()
        return StoreError(f"cannot open the store {self.host._store.path!r}: it is corrupt ({why}). "
                          f"The file was left untouched.")

    def _restore_waits(self, inv: Invocation) -> None:
        """Who `inv` waits for, from its journal: callees and attached invocations, workflow promises."""
        done = answered_completion_ids(inv.journal)
        for e in inv.journal:
            if not messages.is_command(e.type_id):
                continue
            cid = getattr(e.msg, "result_completion_id", None)
            if cid is None or cid in done:
                continue
            if e.type_id == TYPE_IDS["Call"]:
                callee = self.host._invocations.get(call_target_id(inv, e.msg) or "")
                self.host._commands.wait_on(inv, callee, cid, "call")
            elif e.type_id == TYPE_IDS["AttachInvocation"]:
                self.host._commands.wait_on(inv, self.host._commands.resolve_attach_target(e.msg), cid, "attach")
            elif e.type_id == TYPE_IDS["GetPromise"]:
                self.host._commands.apply(inv, "GetPromise", e)  # answered now if resolved, else when it is
            elif e.type_id == TYPE_IDS["Sleep"] and e.due_ms is not None:
                self.host._lifecycle.schedule_sleep(inv, cid, e.due_ms)

    def start_restored(self) -> None:
        """Start what a restore (or a registration) let go, once an event loop runs."""
        if self.host._closed is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (a script building its runtime before asyncio.run): the first await does it
        pending, self.host._to_start = self.host._to_start, []
        for inv in pending:
            if not inv.completed and (inv.status not in ("paused", "suspended", "scheduled") or start_was_held(inv)):
                self.host._lifecycle.start(inv)

    # ------------------------------------------------------------------ handlers that are not registered
    def _missing(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for inv in self.host._invocations.values():
            if inv.deployment is None and not inv.completed:
                name = f"{inv.target.service}/{inv.target.handler}"
                counts[name] = counts.get(name, 0) + 1
        return counts

    def _warn_missing(self) -> None:
        counts = self._missing()
        if counts:
            listed = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))
            # (stacklevel: the caller of Recovery.restore_stored, as before the restore moved here)
            warnings.warn(f"the store {self.host._store.path!r} holds invocations of handlers that are not registered: "
                          f"{listed}. They wait; register their services (rt.register(...)) and they resume.",
                          MissingHandlerWarning, stacklevel=5)

    def park(self, inv: Invocation) -> None:
        """An invocation whose handler is not registered: it waits, showing why, until register() binds it."""
        name = f"{inv.target.service}/{inv.target.handler}"
        message = (f"the handler {name} is not registered in this runtime (it was, when this invocation "
                   f"was stored); register its service with rt.register(...) and the invocation resumes")
        inv.status = "backing-off"
        inv.next_retry_at = None
        if inv.last_failure is None or inv.last_failure.message != message:
            err = TransientError(inv.attempts, len(inv.journal) - 1, self.host._now(), 500, message)
            inv.record_error(err)
        self.host._dirty.add(inv)

    def rebind(self, names: set[str]) -> None:
        """After register(): invocations restored without their handler take the new registration."""
        for inv in self.host._invocations.values():
            if inv.deployment is None and inv.target.service in names:
                service, handler, deployment = self._bind(inv.target)
                if deployment is None:
                    continue
                inv.service, inv.handler, inv.deployment = service, handler, deployment
                if not inv.completed and inv.status == "backing-off" and inv.next_retry_at is None:
                    self.host._to_start.append(inv)
        self.start_restored()


def start_was_held(inv: Invocation) -> bool:
    """Pending without a key, or suspended with nothing left to wait for: its start was decided and held by
    the scheduler's strategy when the runtime stopped (the default strategy starts it in the same event)."""
    return (inv.status == "pending" and inv.lock_key is None) or (
        inv.status == "suspended" and inv.waiting_ids is None)
