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
from typing import Any

from ..errors import MissingHandlerWarning, StoreError
from ..protocol import messages
from ..protocol.deployment import parse_manifest
from . import ids
from .common import TYPE_IDS
from .journal import answered_completion_ids, call_target_id
from .model import Invocation, JournalEntry, Target, TransientError
from .store import ChangeSet, MemoryStore, Snapshot, SqliteStore, StoreWriteFailed, invocation_fields


class Recovery:
    """Part of Runtime (see core.py): it works on the state Runtime.__init__ sets up."""

    _store: MemoryStore | SqliteStore
    _closed: str | None
    _store_failure: str | None

    # ------------------------------------------------------------------ what is written
    def durable_meta(self) -> dict[str, Any]:
        """The engine's own durable values (clock, id generator, inbox sequence), as a store records them."""
        return {"now_ms": self._clock.now_ms(), "seed": self._seed, "ids_drawn": self._seeded_ids.drawn,
                "inbox_seq": self._keys.seq}

    def _clear_dirty(self) -> None:
        self._dirty.clear()
        self._dirty_state.clear()
        self._dirty_promises.clear()
        self._dirty_services.clear()

    def _bind_store(self) -> None:
        """`self._commit()` ends an event: the store writes what it changed, in one transaction. In memory
        there is nothing to write, and forgetting the changed invocations is all it does (kept cheap: it
        runs several times per invocation)."""
        store = self._store
        self._commit = self._dirty.clear if not store.durable else self._commit_changes

    def _change_set(self) -> ChangeSet:
        """What the current event changed: the records to write."""
        return ChangeSet(
            invocations=[(inv, self._invocations.get(inv.id) is inv) for inv in self._dirty],
            services=[(n, self._registry.revisions[n], self._registry.manifests[n]) for n in self._dirty_services],
            state=[(wk, self._state.get(wk, {})) for wk in self._dirty_state],
            promises=[(wk, self._records.promises.get(wk, {})) for wk in self._dirty_promises],
            meta=self.durable_meta(),
        )

    def _commit_changes(self) -> None:
        """End an event on a durable store: write its change set, or stop the runtime if it cannot."""
        try:
            self._store.commit(self._change_set())
        except StoreWriteFailed as exc:
            raise self._store_failed(str(exc)) from None
        self._clear_dirty()

    @property
    def store(self) -> str | None:
        """The store's file, or None for the in-memory default."""
        return self._store.path

    def close(self, reason: str = "rt.close() was called") -> None:
        """Stop this runtime: attempts in flight end, its store file is released. Later use raises."""
        if self._closed is not None:
            return
        self._closed = reason
        self._detach_attempts()  # their tasks end within a few loop turns
        self._timers.clear()
        self._timers.disarm()
        self._waiter.stop_heartbeat()
        self._store.close()
        self._waiter.wake_all_awaits()  # awaits in cells raise now instead of waiting on a runtime that is gone

    def _check_open(self) -> None:
        if self._store_failure is not None:
            raise StoreError(self._store_failure)
        if self._closed is not None:
            raise RuntimeError(f"this Runtime is closed ({self._closed}); create a new one "
                               f"(pg.Runtime(..., store=...) resumes from the same store)")

    def _store_failed(self, why: str) -> StoreError:
        """A commit failed (a full disk): the event that made it is not stored. The runtime stops, and its
        tables become what the file holds, so what it shows is what a reopen resumes from."""
        path = self._store.path
        message = (f"the store {path!r} could not be written: {why}. The last event was not stored, and this "
                   f"runtime has stopped; it now shows what the file holds. Free some space, then open the store "
                   f"again with pg.Runtime(..., store={path!r}): it resumes from there, nothing committed is lost")
        snap = self._store.load()
        waiters = [w for inv in self._invocations.values() if not inv.completed for w in inv.waiters]
        self._closed = self._store_failure = message
        self._detach_attempts()
        self._store.close()
        self._clear_dirty()
        self._to_start = []
        self._reset_tables()
        if snap is not None:
            self._clock.reset(snap.meta["now_ms"])  # the clock, too, as stored (the failed event may have moved it)
            self._restore(snap)  # starts nothing and writes nothing: the runtime is closed
        self._timers.clear()
        self._waiter.wake(waiters)
        self._waiter.wake(self._waiter.sleepers)
        return StoreError(message)

    def _detach_attempts(self) -> None:
        """Stop every attempt in flight without letting anything it still does reach the runtime (a crash)."""
        for run in list(self._runs.values()):
            a = run.attempt
            a.on_message = a.on_end = lambda *_: None  # type: ignore[method-assign]
            a.on_waiting = lambda: None  # type: ignore[method-assign]
            a.abort()
        self._runs.clear()

    async def _restart(self) -> None:
        """Lose everything in memory and come back from the store, as after the process died."""
        self._check_open()
        # All in one step: nothing (a timer, another task's await) may act on the old tables once the
        # attempts are cut off; their tasks wind down afterwards, talking to no one.
        self._detach_attempts()
        waiters = [w for inv in self._invocations.values() if not inv.completed for w in inv.waiters]
        try:
            snap = self._store.reload(self)
            self._clear_dirty()  # (nothing is pending between events; and these records are about to go)
            self._to_start = []
            self._reset_tables()
            self._restore_stored(snap)
        except StoreError as exc:  # the file is closed: this runtime stops, and says why when used again
            self._closed = self._store_failure = str(exc)
            self._timers.clear()
            raise
        finally:
            self._waiter.wake(waiters)  # awaits in cells go on with the restored invocations (see _await_done)
            self._waiter.wake(self._waiter.sleepers)
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ restore
    def _restore_stored(self, snap: Snapshot) -> None:
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
            self._clock.restore(meta["now_ms"])
        self._seed = meta.get("seed", self._seed)
        # the id generator continues where it was: no id is ever reused
        self._seeded_ids = ids.SeededIds(self._seed, meta.get("ids_drawn", 0))
        self._keys.seq = meta.get("inbox_seq", 0)
        for name, manifest in snap.manifests.items():
            self._registry.restore(name, manifest, snap.revisions.get(name, 1))
        self._state = {k: dict(v) for k, v in snap.state.items()}
        self._records.promises = {k: dict(v) for k, v in snap.promises.items()}

        restored = [self._restored_invocation(rec, snap) for rec in snap.invocations]
        for inv in restored:
            self._invocations[inv.id] = inv
            self._by_start_id[inv.start_id] = inv
            key_s = inv.target.key or ""
            if inv.handler.ty == "WORKFLOW":
                self._records.remember_workflow_run((inv.target.service, key_s), inv.id)
            elif inv.idempotency_key is not None:
                self._records.remember_idempotent((inv.target.service, key_s, inv.target.handler,
                                                   inv.idempotency_key), inv.id)
        live = [inv for inv in restored if not inv.completed]
        for inv in sorted((i for i in restored if i.completed and i.expires_at is not None),
                          key=lambda i: (i.expires_at, i.completed_at)):
            self._schedule_expiry(inv)
        # locks: whoever started and has not finished holds its key; the rest queue in their stored order
        for inv in live:
            lk = inv.lock_key
            if lk is not None and inv.status not in ("pending", "scheduled"):
                self._keys.restore_holder(lk, inv)
        for inv in sorted((i for i in live if i.status == "pending" and i.lock_key is not None),
                          key=lambda i: i.inbox_seq):
            lk = inv.lock_key
            assert lk is not None
            self._waiter.on_edge(self._keys.restore_queued(lk, inv))
        to_start: list[Invocation] = []
        for inv in live:
            self._restore_waits(inv)
            if inv.status == "scheduled":
                self._schedule_start(inv)
            elif inv.status == "backing-off" and inv.next_retry_at is not None:
                self._schedule_retry(inv)
            elif inv.status in ("running", "backing-off"):  # running when the process died; or parked
                to_start.append(inv)
        to_start.extend(self._keys.start_free_heads())
        self._to_start.extend(to_start)
        self._warn_missing()
        self._start_restored()
        self._commit()

    def _restored_invocation(self, rec: dict[str, Any], snap: Snapshot) -> Invocation:
        target = Target(rec["service"], rec["handler"], rec["key"])
        service, handler, deployment = self._bind(target)
        inv = Invocation(target=target, service=service, handler=handler, deployment=deployment, runtime=self,
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
        return inv

    def _bind(self, target: Target) -> tuple[Any, Any, Any]:
        """The registered service and handler for a restored invocation, else the stored manifest's (and no
        deployment: it waits until its service is registered)."""
        reg = self._registry.get(target.service)
        if reg is not None and target.handler in reg.info.handlers:
            return reg.info, reg.info.handlers[target.handler], reg.deployment
        manifest = self._registry.manifests.get(target.service)
        info = parse_manifest({"services": [manifest]})[target.service] if manifest else None
        if info is None or target.handler not in info.handlers:
            raise self._store_corrupt(f"an invocation of {target} has no stored service description")
        return info, info.handlers[target.handler], None

    def _store_corrupt(self, why: str) -> Exception:
        self._store.close()
        return StoreError(f"cannot open the store {self._store.path!r}: it is corrupt ({why}). "
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
                callee = self._invocations.get(call_target_id(inv, e.msg) or "")
                self._commands.wait_on(inv, callee, cid, "call")
            elif e.type_id == TYPE_IDS["AttachInvocation"]:
                self._commands.wait_on(inv, self._commands.resolve_attach_target(e.msg), cid, "attach")
            elif e.type_id == TYPE_IDS["GetPromise"]:
                self._commands.apply(inv, "GetPromise", e.msg)  # answered now if resolved, else when it is
            elif e.type_id == TYPE_IDS["Sleep"] and e.due_ms is not None:
                self._schedule_sleep(inv, cid, e.due_ms)

    def _start_restored(self) -> None:
        """Start what a restore (or a registration) let go, once an event loop runs."""
        if self._closed is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (a script building its runtime before asyncio.run): the first await does it
        pending, self._to_start = self._to_start, []
        for inv in pending:
            if not inv.completed and inv.status not in ("paused", "suspended", "scheduled"):
                self._start(inv)

    # ------------------------------------------------------------------ handlers that are not registered
    def _missing(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for inv in self._invocations.values():
            if inv.deployment is None and not inv.completed:
                name = f"{inv.target.service}/{inv.target.handler}"
                counts[name] = counts.get(name, 0) + 1
        return counts

    def _warn_missing(self) -> None:
        counts = self._missing()
        if counts:
            listed = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))
            warnings.warn(f"the store {self._store.path!r} holds invocations of handlers that are not registered: "
                          f"{listed}. They wait; register their services (rt.register(...)) and they resume.",
                          MissingHandlerWarning, stacklevel=4)

    def _park(self, inv: Invocation) -> None:
        """An invocation whose handler is not registered: it waits, showing why, until register() binds it."""
        name = f"{inv.target.service}/{inv.target.handler}"
        message = (f"the handler {name} is not registered in this runtime (it was, when this invocation "
                   f"was stored); register its service with rt.register(...) and the invocation resumes")
        inv.status = "backing-off"
        inv.next_retry_at = None
        if inv.last_failure is None or inv.last_failure.message != message:
            err = TransientError(inv.attempts, len(inv.journal) - 1, self._now(), 500, message)
            inv.errors.append(err)
            inv.last_failure = err
        self._dirty.add(inv)

    def _rebind(self, names: set[str]) -> None:
        """After register(): invocations restored without their handler take the new registration."""
        for inv in self._invocations.values():
            if inv.deployment is None and inv.target.service in names:
                service, handler, deployment = self._bind(inv.target)
                if deployment is None:
                    continue
                inv.service, inv.handler, inv.deployment = service, handler, deployment
                if not inv.completed and inv.status == "backing-off" and inv.next_retry_at is None:
                    self._to_start.append(inv)
        self._start_restored()

