"""Durability: what the runtime tells its store after each event, how it stops (rt.close(), a write that
failed) and how it comes back from a store after the process died (or rt.faults.restart). The restore
itself, the tables rebuilt from the records, and invocations whose handlers are not registered are
restore.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..errors import StoreError
from ..protocol.driver import current_attempt
from .model import Invocation
from .restore import RestoreHost, Restorer
from .store import META_NAMES, SqliteStore, StoreWriteFailed
from .store_records import ChangeSet, Snapshot
from .timers import Timers

if TYPE_CHECKING:
    from .core import Engine


class InFlight(Protocol):
    """The attempts in flight, per invocation id (the attempts part)."""

    @property
    def runs(self) -> dict[str, Any]: ...


class RecoveryHost(RestoreHost, Protocol):
    """What the durability part reads and rebuilds of the engine: what a restore does (RestoreHost), and
    its open/closed state, the attempts in flight, the changed-records sets and its timers."""

    _store_failure: str | None

    @property
    def _attempts(self) -> InFlight: ...
    @property
    def _dirty_state(self) -> set[tuple[str, str]]: ...
    @property
    def _dirty_promises(self) -> set[tuple[str, str]]: ...
    @property
    def _dirty_services(self) -> set[str]: ...
    @property
    def _timers(self) -> Timers: ...

    def _reset_tables(self) -> None: ...


class Recovery:
    """The engine's part for durability (the engine's `_recovery`): it ends each event by writing its change
    set, stops the runtime (close, a failed write), restarts it from the store; its `restorer` restores the
    tables from records and parks invocations whose handler is not registered. The tables are the engine's:
    it reads and rebuilds them through `host` (see RecoveryHost)."""

    def __init__(self, host: RecoveryHost) -> None:
        self.host = host
        # the loop on which changes from the SDK's side wait to be written (see end_event), None when none do
        self._pending: asyncio.AbstractEventLoop | None = None
        # what the driver calls before the SDK reads (see bind_store); None in memory: nothing to write
        self.before_sdk_reads: Callable[[], None] | None = None
        self.restorer = Restorer(host)  # the tables rebuilt from the records (restore.py)

    # ------------------------------------------------------------------ what is written
    def durable_meta(self) -> dict[str, Any]:
        """The engine's own durable values (clock, id generator, inbox sequence), as a store records them."""
        return dict(zip(META_NAMES, self._meta_values(), strict=True))

    def _meta_values(self) -> tuple[int, int, int, int]:
        """durable_meta's values, in META_NAMES' order (a tuple: compared at every flush, built cheaply)."""
        host = self.host
        return host._clock.now_ms(), host._seed, host._seeded_ids.drawn, host._keys.seq

    def clear_dirty(self) -> None:
        self.host._dirty.clear()
        self.host._dirty_state.clear()
        self.host._dirty_promises.clear()
        self.host._dirty_services.clear()

    def bind_store(self) -> None:
        """`self.host._commit()` ends an event. In memory there is nothing to write, and forgetting the changed
        invocations is all it does (kept cheap: it runs several times per invocation). On a durable store,
        what it changed is written in one transaction: at once, or with the other changes of the same loop
        turn for an event from the SDK's side (see end_event)."""
        store = self.host._store
        self.host._commit = self.host._dirty.clear if not store.durable else self.end_event
        self.before_sdk_reads = self._before_sdk_reads if store.durable else None

    def end_event(self) -> None:
        """End an event on a durable store. A message the SDK sent (its app task runs the event) is written
        with everything else changed in the same loop turn: before the SDK reads anything back (the
        driver calls before_sdk_reads), before an await in a cell returns (it commits), at the end of the
        attempt, and at the latest in the next loop turn. Every other event (an operation from a cell or the
        ingress, a timer, an attempt's end) is written before it returns, with whatever is pending."""
        if current_attempt.get() is None:
            self.flush()
            return
        loop = asyncio.get_running_loop()
        if self._pending is not loop:  # (once per loop turn; and again should the runtime move to another loop)
            self._pending = loop
            loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        if self._pending is not None:
            with contextlib.suppress(StoreError):  # the runtime has stopped; every await on it says why
                self.flush()

    def _before_sdk_reads(self) -> None:
        """The SDK is about to read what the runtime sent it: what that tells it must be on disk first. If
        it cannot be written, the runtime stops and the attempt is cut off (the driver sees it aborted)."""
        if self._pending is not None:
            with contextlib.suppress(StoreError):
                self.flush()

    def _change_set(self, meta: dict[str, Any]) -> ChangeSet:
        """What the events since the last commit changed: the records to write."""
        host = self.host
        return ChangeSet(
            invocations=[(inv, host._invocations.get(inv.id) is inv) for inv in host._dirty],
            services=[(n, host._registry.revisions[n], host._registry.manifests[n]) for n in host._dirty_services]
            if host._dirty_services else [],
            state=[(wk, host._state.get(wk, {})) for wk in host._dirty_state] if host._dirty_state else [],
            promises=[(wk, host._records.promises.get(wk, {})) for wk in host._dirty_promises]
            if host._dirty_promises else [],
            meta=meta,
        )

    def flush(self) -> None:
        """Write every pending change now, or stop the runtime if it cannot (a StoreError saying why)."""
        self._pending = None
        store, host = self.host._store, self.host
        if not isinstance(store, SqliteStore):
            host._dirty.clear()
            return
        meta = self._meta_values()
        moved = meta != store.meta_values
        if not (moved or host._dirty or host._dirty_state or host._dirty_promises or host._dirty_services):
            return  # nothing to write (the commit after a cell's await, say, when the attempt's end wrote it)
        try:
            store.commit(self._change_set(dict(zip(META_NAMES, meta, strict=True)) if moved else {}))
        except StoreWriteFailed as exc:
            raise self._store_failed(str(exc)) from None
        self.clear_dirty()

    def close(self, reason: str = "rt.close() was called") -> None:
        """Stop this runtime: attempts in flight end, its store file is released. Later use raises."""
        if self.host._closed is not None:
            return
        try:
            self.flush()  # what is pending is stored first
        except StoreError:
            return  # it could not be: the runtime has stopped already, saying why (see _store_failed)
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
        self._pending = None
        self._detach_attempts()
        self.host._store.close()
        self.clear_dirty()
        self.host._to_start = []
        self.host._reset_tables()
        if snap is not None:
            # the clock, too, as stored (the failed event may have moved it)
            self.host._clock.reset(snap.meta["now_ms"])
            self.restorer.restore(snap)  # starts nothing and writes nothing: the runtime is closed
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
        self.flush()  # what happened before is stored, as between two loop turns
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

    # ------------------------------------------------------------------ restore (restore.py)
    def restore_stored(self, snap: Snapshot) -> None:
        """Restore from what a store file holds; a record the runtime cannot use is a StoreError."""
        self.restorer.restore_stored(snap)

    def start_restored(self) -> None:
        """Start what a restore (or a registration) let go, once an event loop runs."""
        self.restorer.start_restored()

    def park(self, inv: Invocation) -> None:
        """An invocation whose handler is not registered: it waits, showing why, until register() binds it."""
        self.restorer.park(inv)

    def rebind(self, names: set[str]) -> None:
        """After register(): invocations restored without their handler take the new registration."""
        self.restorer.rebind(names)
