"""Where the runtime's durable records live: in memory (the default) or in a SQLite file.

The runtime works on its own tables in memory and tells the store what changed at the end of every event
(a message from the SDK, a timer, an attempt's end, an operation from a cell). The SDK's messages are
gathered and committed together, before the SDK reads anything back and at the latest in the next loop turn;
every other event commits before it returns (see recovery.Recovery.end_event and docs/store.md). A commit
writes only what differs from what the file holds: journal entries and errors are appended, a record that
did not change and a state value already stored are not written again. What the store holds is what
recovery needs: invocations with their journals and failed attempts, K/V state, workflow promises, the
services' manifests, the clock and the id generator.
Everything else (locks, inboxes, timers, who waits for whom) is rebuilt from those records on restore,
see restore.py. The records themselves are in store_records.py, the SQLite file's format in store_format.py.
"""

from __future__ import annotations

import json
import os
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .model import Failure, Invocation
from .store_format import VERSION, cannot_open, open_file, read_records
from .store_records import (
    HEAD_MAX,
    ChangeSet,
    Snapshot,
    error_record,
    invocation_fields,
    pack_head,
    record_fingerprint,
    record_text,
    result_record,
    snapshot_of,
)

if TYPE_CHECKING:
    import sqlite3  # imported where a SQLite store is opened or written: the default store needs none of it

    from .core import Engine as Runtime

# (the records a store exchanges, imported from here too, as before they moved to store_records.py)
__all__ = ["META_NAMES", "ChangeSet", "MemoryStore", "Snapshot", "SqliteStore", "StoreWriteFailed", "invocation_fields",
           "open_store", "snapshot_of"]


class StoreWriteFailed(Exception):
    """A commit could not be written (e.g. a full disk); its message says why, in words."""


class MemoryStore:
    """The default: the runtime's own tables are the records, so there is nothing to write. A restart
    (rt.faults.restart) rebuilds the runtime from a snapshot of them, as the SQLite store would."""

    durable = False
    path: str | None = None

    def load(self) -> Snapshot | None:
        return None

    def reload(self, rt: Runtime) -> Snapshot:
        return snapshot_of(rt)

    def close(self) -> None:
        pass


_INSERT_ENTRY = "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_STATE = ("INSERT INTO state VALUES (?, ?, ?, ?) "
                 "ON CONFLICT(service, key, name) DO UPDATE SET value=excluded.value")
_UPSERT_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value"
_UPSERT_SERVICE = ("INSERT INTO services VALUES (?, ?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET revision=excluded.revision, manifest=excluded.manifest")
META_NAMES = ("now_ms", "seed", "ids_drawn", "inbox_seq")  # the engine's durable values, in the meta table
# journal entries, errors, the record's fingerprint (None: not kept, it is written again when changed), rowid,
# and the head as stored (None: closed, or format < 3)
Written = tuple[int, int, "tuple[Any, ...] | None", int, "bytes | None"]


@dataclass
class _Writes:
    """The statements of one commit, and what the file holds once it is committed."""

    ops: list[tuple[str, Any, bool]] = field(default_factory=list)  # (sql, parameters or rows, executemany)
    written: dict[str, Written | None] = field(default_factory=dict)
    new: list[tuple[Any, ...]] = field(default_factory=list)  # the rows of invocations not yet stored
    state: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    deleted: bool = False  # an invocation's rows are deleted
    drawn: int = 0  # the id generator's count as of this commit (format 3: a new row carries it)

    def one(self, sql: str, params: tuple[Any, ...]) -> None:
        self.ops.append((sql, params, False))

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.ops.append((sql, rows, True))


# One open store per file in this process: re-running the cell that creates a runtime on a file closes the
# runtime that had it open before (a store can have one writer; another process gets a clear error).
_open: dict[str, weakref.ref[Runtime]] = {}


class SqliteStore:
    """A SQLite file in WAL mode, held with an exclusive lock for as long as the runtime has it open.

    Commits use synchronous=NORMAL: every committed transaction survives the process dying at any moment;
    a power failure may lose the last few (the operating system had not written them yet).
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # what the file holds, so that a commit writes only what differs: per invocation id (journal entries,
        # errors, fingerprint of its record, its row); per object the state values (shared with the runtime's)
        self._written: dict[str, Written] = {}
        self._state: dict[tuple[str, str], dict[str, bytes]] = {}
        self._meta: dict[str, Any] = {}
        # the engine's durable values (META_NAMES) as last committed: an event that moved none of them
        # need not compare them one by one (None: not known, after opening or loading the file)
        self.meta_values: tuple[Any, ...] | None = None
        self._db: sqlite3.Connection | None = None
        self.commits = 0  # transactions written (benchmarks/bench_store.py reads it)
        try:
            self._db, self._meta = open_file(self.path)  # (its schema, or its format checked: store_format.py)
            self._cursor = self._db.cursor()
        except StoreError:
            self.close()
            raise
        # format 3 (a new file): journal heads in the invocations' rows, the id count in new rows too
        self._heads = self._meta.get("version", VERSION) >= 3
        self._drawn_in_meta = self._meta.get("ids_drawn", 0)  # (what the meta row holds: the rows may say more)
        self._insert = ("INSERT INTO invocations VALUES (?, ?, ?, ?)" if self._heads else
                        "INSERT INTO invocations VALUES (?, ?)")

    def _fail(self, why: str) -> StoreError:
        self.close()
        return cannot_open(self.path, why)

    # ------------------------------------------------------------------ reading
    def load(self) -> Snapshot | None:
        """Everything stored, or None for a new file."""
        import sqlite3
        db = self._db
        assert db is not None
        snap = Snapshot(meta=dict(self._meta))
        if "now_ms" not in snap.meta:
            return None
        try:
            rowids = read_records(db, snap)
        except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
            raise self._fail(f"it is corrupt ({exc!r})") from None
        # (a restored record's fingerprint is not known: the first change to it rewrites it; its head is closed)
        self._written = {i: (len(snap.journals.get(i, ())), len(snap.errors.get(i, ())), None, rowid, None)
                         for i, rowid in rowids.items()}
        if self._heads:  # (the count the file holds: the rows' if larger than meta's)
            self._meta["ids_drawn"] = snap.meta.get("ids_drawn", 0)
        self._state = {k: dict(v) for k, v in snap.state.items()}
        self.meta_values = None
        return snap

    def reload(self, rt: Runtime) -> Snapshot:
        snap = self.load()
        return snap if snap is not None else Snapshot(meta=rt.durable_meta())

    # ------------------------------------------------------------------ writing
    def commit(self, changes: ChangeSet) -> None:
        """Write a change set in one transaction, only what differs from what the file holds (an unchanged
        record, a state value already stored, a clock that did not move: nothing; nothing at all: no
        transaction); StoreWriteFailed if SQLite cannot."""
        db = self._db
        if db is None:
            return
        meta = {k: v for k, v in changes.meta.items() if self._meta.get(k) != v} if changes.meta else {}
        w = self._writes(changes, changes.meta.get("ids_drawn", self._meta.get("ids_drawn", 0)))
        meta_rows = self._meta_rows(w, meta)
        if meta_rows:
            w.many(_UPSERT_META, [(k, str(v) if type(v) is int else json.dumps(v)) for k, v in meta_rows.items()])
        if w.ops or w.new:
            rowids = self._transaction(db, w)
            self._committed(w, meta, rowids)
            self._drawn_in_meta = meta_rows.get("ids_drawn", self._drawn_in_meta)
            self.commits += 1
        if changes.meta:
            self.meta_values = tuple(changes.meta.values())  # (what the file holds now)

    def _meta_rows(self, w: _Writes, moved: dict[str, Any]) -> dict[str, Any]:
        """The meta rows to write: the values that moved. In format 3 the id generator's count is left out
        when the rows this commit inserts carry it, and written when rows are deleted (one of them may have
        carried it): the count restored is the larger of the meta row's and the rows'."""
        if not self._heads:
            return moved
        if w.deleted:
            return {**moved, "ids_drawn": w.drawn} if w.drawn != self._drawn_in_meta else moved
        if w.new and "ids_drawn" in moved:
            return {k: v for k, v in moved.items() if k != "ids_drawn"}
        return moved

    def _writes(self, changes: ChangeSet, drawn: int) -> _Writes:
        """The statements that bring the file to what `changes` says (the meta rows aside)."""
        w = _Writes(drawn=drawn)
        for inv, kept in changes.invocations:
            self._invocation_writes(w, inv, kept)
        for name, revision, manifest in changes.services:
            w.one(_UPSERT_SERVICE, (name, revision, json.dumps(manifest)))
        for wk, state in changes.state:
            self._state_writes(w, wk, state)
        for (svc, key), promises in changes.promises:
            w.one("DELETE FROM promises WHERE service=? AND key=?", (svc, key))
            w.many("INSERT INTO promises VALUES (?, ?, ?, ?, ?)", [
                (svc, key, n, None, json.dumps(result_record(v))) if isinstance(v, Failure) else
                (svc, key, n, v, None) for n, v in promises.items()])
        return w

    def _transaction(self, db: sqlite3.Connection, w: _Writes) -> dict[str, int]:
        """Run the statements in one transaction; the rowids of the invocations inserted. Rolled back, and
        StoreWriteFailed saying why, if SQLite cannot write them."""
        cur = self._cursor  # (one cursor for every statement: none is made per statement)
        # one statement is a transaction by itself (SQLite's autocommit): no BEGIN and COMMIT around it
        alone = len(w.new) + len(w.ops) == 1 and (not w.ops or not w.ops[0][2])
        if not alone:
            cur.execute("BEGIN")
        try:
            rowids = {}
            for row in w.new:
                cur.execute(self._insert, row if not self._heads else (*row, w.drawn))
                rowids[row[0]] = cur.lastrowid or 0
            for sql, params, many in w.ops:
                if many:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
            if not alone:
                cur.execute("COMMIT")
        except BaseException as exc:
            import sqlite3
            if db.in_transaction:  # (SQLite has rolled back by itself after some errors, e.g. a full disk)
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreWriteFailed(self._write_error(exc)) from None
            raise
        return rowids

    def _committed(self, w: _Writes, meta: dict[str, Any], rowids: dict[str, int]) -> None:
        """What the file now holds (kept so that the next commit writes only what differs from it)."""
        self._meta.update(meta)
        for inv_id, written in w.written.items():
            if written is None:
                self._written.pop(inv_id, None)
            else:
                self._written[inv_id] = (*written[:3], rowids[inv_id], written[4]) if inv_id in rowids else written
        for wk, state in w.state.items():
            if state:
                self._state[wk] = state
            else:
                self._state.pop(wk, None)

    def _write_error(self, exc: sqlite3.DatabaseError) -> str:
        """Why a commit failed, in words (the full disk named as such)."""
        import sqlite3
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return f"the disk is full (SQLite: {exc})"
        return f"SQLite reported: {exc}"

    def _invocation_writes(self, w: _Writes, inv: Invocation, kept: bool) -> None:
        """An invocation's record when it changed, and its journal entries and errors not yet stored: they
        are only ever appended. A forgotten invocation's rows are deleted."""
        written = self._written.get(inv.id)
        if not kept:  # forgotten (retention over, or cancelled before it started)
            if written is not None:
                w.one("DELETE FROM invocations WHERE rowid=?", (written[3],))
                w.one("DELETE FROM journal WHERE invocation_id=?", (inv.id,))
                w.one("DELETE FROM errors WHERE invocation_id=?", (inv.id,))
                w.written[inv.id] = None
                w.deleted = True
            return
        n_entries, n_errors, stored, rowid, head = written or (0, 0, None, 0, b"" if self._heads else None)
        fingerprint = record_fingerprint(inv)
        size, errors = inv.journal_size, inv.errors
        if fingerprint == stored and size <= n_entries and len(errors) <= n_errors:
            return
        rows = inv.journal_rows(n_entries) if size > n_entries else []
        grown = head + pack_head(rows) if head is not None and rows else None
        if grown is not None and len(grown) <= HEAD_MAX:
            head, rows = grown, []  # the entries ride in the invocation's row
        elif grown is not None:
            head = None  # they, and all after them, go to the journal table
            grown = None
        record = record_text(inv) if written is None or fingerprint != stored else None
        if written is None:
            w.new.append((inv.id, record, grown) if self._heads else (inv.id, record))  # (its rowid: once inserted)
        elif record is not None:
            w.one(*(("UPDATE invocations SET record=?, head=? WHERE rowid=?", (record, grown, rowid))
                    if grown is not None else ("UPDATE invocations SET record=? WHERE rowid=?", (record, rowid))))
        elif grown is not None:
            w.one("UPDATE invocations SET head=? WHERE rowid=?", (grown, rowid))
        if len(rows) == 1:
            w.one(_INSERT_ENTRY, (inv.id, n_entries, *rows[0]))
        elif rows:
            w.many(_INSERT_ENTRY, [(inv.id, i, *row) for i, row in enumerate(rows, n_entries)])
        if len(errors) > n_errors:
            w.many("INSERT INTO errors VALUES (?, ?, ?)",
                   [(inv.id, i, json.dumps(error_record(e))) for i, e in enumerate(errors[n_errors:], n_errors)])
        # (a completed invocation's journal is final: its head is closed; its record rarely changes again (a
        # send repeated with its idempotency key, say), and is then written again: neither is kept here)
        done = inv.completed
        w.written[inv.id] = (max(size, n_entries), max(len(errors), n_errors), None if done else fingerprint, rowid,
                             None if done else head)

    def _state_writes(self, w: _Writes, wk: tuple[str, str], state: dict[str, bytes]) -> None:
        """The values of one object's state that differ from the stored ones, and the names it no longer has."""
        svc, key = wk
        stored = self._state.get(wk, {})
        changed = [(svc, key, n, v) for n, v in state.items() if stored.get(n) != v]
        gone = [(svc, key, n) for n in stored if n not in state]
        if changed:
            w.many(_UPSERT_STATE, changed)
        if gone:
            w.many("DELETE FROM state WHERE service=? AND key=? AND name=?", gone)
        if changed or gone:
            w.state[wk] = dict(state)  # (the values themselves are shared with the runtime's table)

    def close(self) -> None:
        if self._db is not None:
            # (the cursor first: a statement it still holds would keep the connection, and the file's lock)
            self._cursor.close()
            self._db.close()
            self._db = None
        ref = _open.get(os.path.realpath(self.path))
        owner = ref() if ref is not None else None
        if owner is None or owner._store is self:
            _open.pop(os.path.realpath(self.path), None)


def open_store(store: Any, rt: Runtime) -> MemoryStore | SqliteStore:
    """`store=` as Runtime takes it: None (in memory) or a file path."""
    if store is None:
        return MemoryStore()
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a file path such as 'demo.sqlite' (or None for memory), not "
                        f"{type(store).__name__}")
    if os.fspath(store) in ("", ":memory:"):
        raise ValueError(f"store={os.fspath(store)!r} is not a file: pass store=None to keep everything in memory "
                         f"(the default), or a file path such as 'demo.sqlite' to keep it across restarts")
    real = os.path.realpath(os.fspath(store))
    previous = _open.get(real)
    old = previous() if previous is not None else None
    if old is not None and old is not rt:
        old.close(f"another Runtime opened its store {os.fspath(store)!r}")
    s = SqliteStore(store)
    _open[real] = weakref.ref(rt)
    return s
