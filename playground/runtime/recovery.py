"""Durability: what the runtime tells its store after each event, how it comes back from a store after
the process died (or rt.faults.restart), and what happens to invocations whose handlers are not registered.

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
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..errors import MissingHandlerWarning, StoreError
from ..protocol import messages
from ..protocol.deployment import parse_manifest
from . import ids
from .clock import Clock
from .commands import Commands
from .common import TYPE_IDS
from .journal import answered_completion_ids, call_target_id
from .keys import Keys
from .model import Invocation, JournalEntry, Target, TransientError
from .records import Records
from .registry import Registry
from .store import ChangeSet, MemoryStore, Snapshot, SqliteStore, StoreWriteFailed, invocation_fields
from .timers import Timers
from .waiting import Waiter

if TYPE_CHECKING:
    from .core import Engine


class InFlight(Protocol):
    """The attempts in flight, per invocation id (the attempts part)."""

    @property
    def runs(self) -> dict[str, Any]: ...


class RecoveryHost(Protocol):
    """What the durability part reads and rebuilds of the engine: its tables (read each time: a restore
    replaces them), its open/closed state, the commit hook it binds, and how it starts and schedules."""

    _closed: str | None
    _store_failure: str | None
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
    def _attempts(self) -> InFlight: ...
    @property
    def _dirty(self) -> set[Invocation]: ...
    @property
    def _dirty_state(self) -> set[tuple[str, str]]: ...
    @property
    def _dirty_promises(self) -> set[tuple[str, str]]: ...
    @property
    def _dirty_services(self) -> set[str]: ...
    @property
    def _keys(self) -> Keys: ...
    @property
    def _records(self) -> Records: ...
    @property
    def _registry(self) -> Registry: ...
    @property
    def _timers(self) -> Timers: ...
    @property
    def _commands(self) -> Commands: ...
    @property
    def _waiter(self) -> Waiter: ...

    def _now(self) -> int: ...
    def _reset_tables(self) -> None: ...
    def _start(self, inv: Invocation) -> None: ...
    def _schedule_start(self, inv: Invocation) -> None: ...
    def _schedule_retry(self, inv: Invocation) -> None: ...
    def _schedule_expiry(self, inv: Invocation) -> None: ...
    def _schedule_sleep(self, inv: Invocation, cid: int, wake_ms: int) -> None: ...


class Recovery:
    """The engine's part for durability (the engine's `_recovery`): it ends each event by writing its change
    set, stops the runtime (close, a failed write), restarts it from the store, restores the tables from
    records, and parks invocations whose handler is not registered. The tables are the engine's: it reads
    and rebuilds them through `host` (see RecoveryHost)."""

    def __init__(self, host: RecoveryHost) -> None:
        self.host = host

    # ------------------------------------------------------------------ what is written
    def durable_meta(self) -> dict[str, Any]:
        """The engine's own durable values (clock, id generator, inbox sequence), as a store records them."""
        return {"now_ms": self.host._clock.now_ms(), "seed": self.host._seed, "ids_drawn": self.host._seeded_ids.drawn,
                "inbox_seq": self.host._keys.seq}

    def clear_dirty(self) -> None:
        self.host._dirty.clear()
        self.host._dirty_state.clear()
        self.host._dirty_promises.clear()
        self.host._dirty_services.clear()

    def bind_store(self) -> None:
        """`self.host._commit()` ends an event: the store writes what it changed, in one transaction. In memory
        there is nothing to write, and forgetting the changed invocations is all it does (kept cheap: it
        runs several times per invocation)."""
        store = self.host._store
        self.host._commit = self.host._dirty.clear if not store.durable else self._commit_changes

    def _change_set(self) -> ChangeSet:
        """What the current event changed: the records to write."""
        return ChangeSet(
            invocations=[(inv, self.host._invocations.get(inv.id) is inv) for inv in self.host._dirty],
            services=[(n, self.host._registry.revisions[n], self.host._registry.manifests[n])
                      for n in self.host._dirty_services],
            state=[(wk, self.host._state.get(wk, {})) for wk in self.host._dirty_state],
            promises=[(wk, self.host._records.promises.get(wk, {})) for wk in self.host._dirty_promises],
            meta=self.durable_meta(),
        )

    def _commit_changes(self) -> None:
        """End an event on a durable store: write its change set, or stop the runtime if it cannot."""
        try:
            store = self.host._store
            assert isinstance(store, SqliteStore)  # bound only for a durable store (see bind_store)
            store.commit(self._change_set())
        except StoreWriteFailed as exc:
            raise self._store_failed(str(exc)) from None
        self.clear_dirty()

    def close(self, reason: str = "rt.close() was called") -> None:
        """Stop this runtime: attempts in flight end, its store file is released. Later use raises."""
        if self.host._closed is not None:
            return
        self.host._closed = reason
        self._detach_attempts()  # their tasks end within a few loop turns
        self.host._timers.clear()
        self.host._timers.disarm()
        self.host._waiter.stop_heartbeat()
        self.host._store.close()
        self.host._waiter.wake_all_awaits()  # awaits in cells raise now instead of waiting on a runtime that is gone

    def check_open(self) -> None:
        if self.host._store_failure is not None:
            raise StoreError(self.host._store_failure)
        if self.host._closed is not None:
            raise RuntimeError(f"this Runtime is closed ({self.host._closed}); create a new one "
                               f"(pg.Runtime(..., store=...) resumes from the same store)")

    def _store_failed(self, why: str) -> StoreError:
        """A commit failed (a full disk): the event that made it is not stored. The runtime stops, and its
        tables become what the file holds, so what it shows is what a reopen resumes from."""
        path = self.host._store.path
        message = (f"the store {path!r} could not be written: {why}. The last event was not stored, and this "
                   f"runtime has stopped; it now shows what the file holds. Free some space, then open the store "
                   f"again with pg.Runtime(..., store={path!r}): it resumes from there, nothing committed is lost")
        snap = self.host._store.load()
        waiters = [w for inv in self.host._invocations.values() if not inv.completed for w in inv.waiters]
        self.host._closed = self.host._store_failure = message
        self._detach_attempts()
        self.host._store.close()
        self.clear_dirty()
        self.host._to_start = []
        self.host._reset_tables()
        if snap is not None:
            # the clock, too, as stored (the failed event may have moved it)
            self.host._clock.reset(snap.meta["now_ms"])
            self._restore(snap)  # starts nothing and writes nothing: the runtime is closed
        self.host._timers.clear()
        self.host._waiter.wake(waiters)
        self.host._waiter.wake(self.host._waiter.sleepers)
        return StoreError(message)

    def _detach_attempts(self) -> None:
        """Stop every attempt in flight without letting anything it still does reach the runtime (a crash)."""
        for run in list(self.host._attempts.runs.values()):
            a = run.attempt
            a.on_message = a.on_end = lambda *_: None
            a.on_waiting = lambda: None
            a.abort()
        self.host._attempts.runs.clear()

    async def restart(self) -> None:
        """Lose everything in memory and come back from the store, as after the process died."""
        self.check_open()
        # All in one step: nothing (a timer, another task's await) may act on the old tables once the
        # attempts are cut off; their tasks wind down afterwards, talking to no one.
        self._detach_attempts()
        waiters = [w for inv in self.host._invocations.values() if not inv.completed for w in inv.waiters]
        try:
            # the in-memory store snapshots the whole engine (store.snapshot_of), which is what the host is
            snap = self.host._store.reload(cast("Engine", self.host))
            self.clear_dirty()  # (nothing is pending between events; and these records are about to go)
            self.host._to_start = []
            self.host._reset_tables()
            self.restore_stored(snap)
        except StoreError as exc:  # the file is closed: this runtime stops, and says why when used again
            self.host._closed = self.host._store_failure = str(exc)
            self.host._timers.clear()
            raise
        finally:
            self.host._waiter.wake(waiters)  # awaits in cells go on with the restored invocations (Waiter.await_done)
            self.host._waiter.wake(self.host._waiter.sleepers)
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ restore
    def restore_stored(self, snap: Snapshot) -> None:
        """Restore from what a store file holds: a record the runtime cannot use is a StoreError (the file
        is closed, untouched), never an exception from deep inside."""
        try:
            self._restore(snap)
        except StoreError:
            raise
        except Exception as exc:
            raise self._store_corrupt(f"a stored record cannot be restored: {exc!r}") from None

    def _restore(self, snap: Snapshot) -> None:
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

        restored = [self._restored_invocation(rec, snap) for rec in snap.invocations]
        for inv in restored:
            self.host._invocations[inv.id] = inv
            self.host._by_start_id[inv.start_id] = inv
            key_s = inv.target.key or ""
            if inv.handler.ty == "WORKFLOW":
                self.host._records.remember_workflow_run((inv.target.service, key_s), inv.id)
            elif inv.idempotency_key is not None:
                self.host._records.remember_idempotent((inv.target.service, key_s, inv.target.handler,
                                                   inv.idempotency_key), inv.id)
        live = [inv for inv in restored if not inv.completed]
        for inv in sorted((i for i in restored if i.completed and i.expires_at is not None),
                          key=lambda i: (i.expires_at, i.completed_at)):
            self.host._schedule_expiry(inv)
        # locks: whoever started and has not finished holds its key; the rest queue in their stored order
        for inv in live:
            lk = inv.lock_key
            if lk is not None and inv.status not in ("pending", "scheduled"):
                self.host._keys.restore_holder(lk, inv)
        for inv in sorted((i for i in live if i.status == "pending" and i.lock_key is not None),
                          key=lambda i: i.inbox_seq):
            lk = inv.lock_key
            assert lk is not None
            self.host._waiter.on_edge(self.host._keys.restore_queued(lk, inv))
        to_start: list[Invocation] = []
        for inv in live:
            self._restore_waits(inv)
            if inv.status == "scheduled":
                self.host._schedule_start(inv)
            elif inv.status == "backing-off" and inv.next_retry_at is not None:
                self.host._schedule_retry(inv)
            elif inv.status in ("running", "backing-off"):  # running when the process died; or parked
                to_start.append(inv)
        to_start.extend(self.host._keys.start_free_heads())
        self.host._to_start.extend(to_start)
        self._warn_missing()
        self.start_restored()
        self.host._commit()

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
                self.host._commands.apply(inv, "GetPromise", e.msg)  # answered now if resolved, else when it is
            elif e.type_id == TYPE_IDS["Sleep"] and e.due_ms is not None:
                self.host._schedule_sleep(inv, cid, e.due_ms)

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
            if not inv.completed and inv.status not in ("paused", "suspended", "scheduled"):
                self.host._start(inv)

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
            warnings.warn(f"the store {self.host._store.path!r} holds invocations of handlers that are not registered: "
                          f"{listed}. They wait; register their services (rt.register(...)) and they resume.",
                          MissingHandlerWarning, stacklevel=4)

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

