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
see recovery.py.
"""

from __future__ import annotations

import json
import marshal
import operator
import os
import warnings
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .model import Failure, Invocation, JournalEntry, TransientError

if TYPE_CHECKING:
    import sqlite3  # imported where a SQLite store is opened or written: the default store needs none of it

    from .core import Engine as Runtime

FORMAT = "restate-playground-store"
VERSION = 2  # what a new file is written in
# Format 1 (before issue 17) had an index on the invocation id and a journal table keyed by rowid. The rows are
# the same, and this version reads and writes both layouts alike (by rowid): a format-1 file stays format 1,
# still readable by the versions before. Format 2 leaves the index out, as each commit would write one of its
# pages more (the store finds an invocation's row by the rowid it keeps), so older versions refuse it.
READS = (1, 2)


@dataclass
class Snapshot:
    """Every durable record, as a store hands it back for a restore."""

    meta: dict[str, Any] = field(default_factory=dict)  # now_ms, seed, ids_drawn, inbox_seq
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # service name -> its manifest entry
    revisions: dict[str, int] = field(default_factory=dict)
    invocations: list[dict[str, Any]] = field(default_factory=list)  # records, in creation order
    journals: dict[str, list[tuple[int, bytes, int, int | None]]] = field(default_factory=dict)
    errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    state: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    promises: dict[tuple[str, str], dict[str, bytes | Failure]] = field(default_factory=dict)


@dataclass
class ChangeSet:
    """What one event changed, as the store writes it: the records themselves, never the runtime."""

    invocations: list[tuple[Invocation, bool]]  # (invocation, still kept: False once it is forgotten)
    services: list[tuple[str, int, dict[str, Any]]]  # (name, revision, manifest entry)
    state: list[tuple[tuple[str, str], dict[str, bytes]]]  # ((service, key), its whole state)
    promises: list[tuple[tuple[str, str], dict[str, bytes | Failure]]]  # ((workflow, id), its promises)
    meta: dict[str, Any]  # now_ms, seed, ids_drawn, inbox_seq


class StoreWriteFailed(Exception):
    """A commit could not be written (e.g. a full disk); its message says why, in words."""


# ---------------------------------------------------------------------------------------------- records
def _result_record(result: bytes | Failure | None) -> Any:
    if isinstance(result, Failure):
        return {"code": result.code, "message": result.message, "metadata": result.metadata}
    return None if result is None else result.hex()


def result_from(rec: Any) -> bytes | Failure | None:
    if isinstance(rec, dict):
        return Failure(rec["code"], rec["message"], dict(rec.get("metadata") or {}))
    return None if rec is None else bytes.fromhex(rec)


# The durable fields of an invocation, in record order. The target's parts, the raw start id, the result
# and the awaited ids are encoded on the way (see invocation_record and invocation_fields).
RECORD_FIELDS = (
    "id", "service", "handler", "key", "revision", "start_id", "random_seed", "created_at", "invoked_by", "sent",
    "invoked_by_id", "invoked_by_target", "idempotency_key", "status", "scheduled_at", "inboxed_at", "inbox_seq",
    "running_at", "completed_at", "expires_at", "completed", "result", "attempts", "retry_count_since_last_entry",
    "next_retry_at", "waiting_ids",
)
_TARGET_FIELDS = ("service", "handler", "key")
_ENCODED_FIELDS = ("start_id", "result", "waiting_ids")


_OWN_FIELDS = tuple(f for f in RECORD_FIELDS if f not in _TARGET_FIELDS)
_OWN_VALUES = operator.attrgetter(*_OWN_FIELDS)


def invocation_record(inv: Invocation) -> dict[str, Any]:
    """The durable part of an invocation (its journal and errors are stored beside it)."""
    target = inv.target
    rec = {"id": inv.id, "service": target.service, "handler": target.handler, "key": target.key,
           **dict(zip(_OWN_FIELDS, _OWN_VALUES(inv), strict=True))}
    rec["start_id"] = inv.start_id.hex()
    rec["result"] = _result_record(inv.result)
    rec["waiting_ids"] = [sorted(s) for s in inv.waiting_ids] if inv.waiting_ids is not None else None
    return rec


def invocation_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """An Invocation's constructor arguments from its record, except the target and what registration
    gives (service, handler, deployment) and the runtime; `waiting_ids` is set after construction."""
    fields = {f: rec[f] for f in RECORD_FIELDS if f not in _TARGET_FIELDS and f not in _ENCODED_FIELDS}
    fields["start_id"] = bytes.fromhex(rec["start_id"])
    fields["result"] = result_from(rec["result"])
    return fields


_FINGERPRINTED = operator.attrgetter(*(f for f in _OWN_FIELDS if f != "result"))


def _fingerprint(inv: Invocation) -> int:
    """Stands for an invocation's record (what invocation_record encodes, its target aside, which never
    changes): equal fingerprints, same record. Much cheaper than encoding it, so an unchanged record costs
    the store nothing."""
    result: Any = inv.result
    if isinstance(result, Failure):
        result = (result.code, result.message, sorted(result.metadata.items()))
    # (marshal format 2 has no back-references: equal values give equal bytes, whatever refers to them)
    return hash(marshal.dumps((_FINGERPRINTED(inv), result), 2))


def error_record(err: TransientError) -> dict[str, Any]:
    return {"attempt": err.attempt, "after_entry": err.after_entry, "at_ms": err.at_ms, "code": err.code,
            "message": err.message, "stacktrace": err.stacktrace, "related_command": err.related_command,
            "related_index": err.related_index, "related_name": err.related_name, "related_type": err.related_type}


def entry_record(e: JournalEntry) -> tuple[int, bytes, int, int | None]:
    return (e.type_id, e.frame(), e.appended_at, e.due_ms)


def snapshot_of(rt: Runtime) -> Snapshot:
    """The records of a runtime's current tables, as a store would have them (what a restart keeps)."""
    invs = list(rt._invocations.values())
    return Snapshot(
        meta=rt.durable_meta(),
        manifests=dict(rt._registry.manifests), revisions=dict(rt._registry.revisions),
        invocations=[invocation_record(i) for i in invs],
        journals={i.id: [entry_record(e) for e in i.journal] for i in invs},
        errors={i.id: [error_record(e) for e in i.errors] for i in invs},
        state={k: dict(v) for k, v in rt._state.items()},
        promises={k: dict(v) for k, v in rt._records.promises.items()},
    )


# ---------------------------------------------------------------------------------------------- stores
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


_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE services (name TEXT PRIMARY KEY, revision INTEGER NOT NULL, manifest TEXT NOT NULL);
CREATE TABLE invocations (id TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE journal (invocation_id TEXT NOT NULL, idx INTEGER NOT NULL, type_id INTEGER NOT NULL,
                      frame BLOB NOT NULL, appended_at INTEGER NOT NULL, due_ms INTEGER,
                      PRIMARY KEY (invocation_id, idx)) WITHOUT ROWID;
CREATE TABLE errors (invocation_id TEXT NOT NULL, idx INTEGER NOT NULL, record TEXT NOT NULL,
                     PRIMARY KEY (invocation_id, idx));
CREATE TABLE state (service TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,
                    PRIMARY KEY (service, key, name));
CREATE TABLE promises (service TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, value BLOB,
                       failure TEXT, PRIMARY KEY (service, key, name));
"""
_TABLES = {"meta", "services", "invocations", "journal", "errors", "state", "promises"}

_INSERT_ENTRY = "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_STATE = ("INSERT INTO state VALUES (?, ?, ?, ?) "
                 "ON CONFLICT(service, key, name) DO UPDATE SET value=excluded.value")
_UPSERT_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value"
_UPSERT_SERVICE = ("INSERT INTO services VALUES (?, ?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET revision=excluded.revision, manifest=excluded.manifest")
_encode = json.JSONEncoder(check_circular=False).encode  # (records hold no cycles)
Written = tuple[int, int, "int | None", int]  # journal entries, errors, record fingerprint, rowid (see SqliteStore)


@dataclass
class _Writes:
    """The statements of one commit, and what the file holds once it is committed."""

    ops: list[tuple[str, Any, bool]] = field(default_factory=list)  # (sql, parameters or rows, executemany)
    written: dict[str, Written | None] = field(default_factory=dict)
    new: list[tuple[str, str]] = field(default_factory=list)  # (id, record) of invocations not yet stored
    state: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)

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
        self._db: sqlite3.Connection | None = None
        self.commits = 0  # transactions written (benchmarks/bench_store.py reads it)
        self._open()

    def _fail(self, why: str) -> StoreError:
        self.close()
        return StoreError(f"cannot open the store {self.path!r}: {why}. The file was left untouched.")

    def _open(self) -> None:
        import sqlite3
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open the store {self.path!r}: it is a directory; pass a file name such as "
                             f"'demo.sqlite'")
        existed = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if os.path.exists(self.path) and not existed:
            warnings.warn(f"the store file {self.path!r} is empty (0 bytes), so it starts as a new, empty store; "
                          f"if it held a store before (was it truncated?), what it held is gone",
                          UserWarning, stacklevel=5)
        try:
            self._db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("BEGIN EXCLUSIVE")  # takes the file's lock, held until close
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise self._fail("another process has it open (a runtime there still runs on it); stop that "
                                 "runtime (rt.close() or restart its kernel), or open another file") from None
            raise self._fail(f"SQLite could not open it ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise self._fail(f"it is not a SQLite database or it is corrupt ({exc})") from None
        try:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if existed or tables:
                self._check(tables)
            else:
                for statement in _SCHEMA.split(";"):  # (executescript would end the transaction holding the lock)
                    if statement.strip():
                        self._db.execute(statement)
                self._db.executemany("INSERT INTO meta VALUES (?, ?)",
                                     [("format", json.dumps(FORMAT)), ("version", json.dumps(VERSION))])
            self._db.execute("COMMIT")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except StoreError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._fail(f"it is not a SQLite database or it is corrupt ({exc})") from None

    def _check(self, tables: set[str]) -> None:
        assert self._db is not None
        if "meta" not in tables:
            raise self._fail("it is a SQLite database, but not a restate-playground store")
        meta = {k: json.loads(v) for k, v in self._db.execute("SELECT name, value FROM meta")}
        if meta.get("format") != FORMAT:
            raise self._fail("it is a SQLite database, but not a restate-playground store")
        if meta.get("version") not in READS:
            raise self._fail(f"it was written in store format {meta.get('version')}, and this restate-playground "
                             f"reads formats {' and '.join(map(str, READS))}; open it with the version that wrote "
                             f"it, or use a new file")
        if not tables >= _TABLES:
            raise self._fail(f"it is corrupt: tables {sorted(_TABLES - tables)} are missing")
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise self._fail(f"it is corrupt (SQLite's integrity check says: {check})")
        self._meta = meta

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
            for name, rev, manifest in db.execute("SELECT name, revision, manifest FROM services"):
                snap.manifests[name] = json.loads(manifest)
                snap.revisions[name] = rev
            rowids = {}
            for rowid, record in db.execute("SELECT rowid, record FROM invocations ORDER BY rowid"):
                rec = json.loads(record)
                snap.invocations.append(rec)
                rowids[rec["id"]] = rowid
            for inv_id, type_id, frame, at, due in db.execute(
                    "SELECT invocation_id, type_id, frame, appended_at, due_ms FROM journal "
                    "ORDER BY invocation_id, idx"):
                snap.journals.setdefault(inv_id, []).append((type_id, bytes(frame), at, due))
            for inv_id, record in db.execute("SELECT invocation_id, record FROM errors ORDER BY invocation_id, idx"):
                snap.errors.setdefault(inv_id, []).append(json.loads(record))
            for svc, key, name, value in db.execute("SELECT service, key, name, value FROM state ORDER BY rowid"):
                snap.state.setdefault((svc, key), {})[name] = bytes(value)
            for svc, key, name, value, failure in db.execute(
                    "SELECT service, key, name, value, failure FROM promises ORDER BY rowid"):
                snap.promises.setdefault((svc, key), {})[name] = (
                    result_from(json.loads(failure)) if failure is not None else bytes(value))  # type: ignore[assignment]
        except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
            raise self._fail(f"it is corrupt ({exc!r})") from None
        # (a restored record's fingerprint is not known: the first change to it rewrites it)
        self._written = {i: (len(snap.journals.get(i, ())), len(snap.errors.get(i, ())), None, rowid)
                         for i, rowid in rowids.items()}
        self._state = {k: dict(v) for k, v in snap.state.items()}
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
        w = _Writes()
        for inv, kept in changes.invocations:
            self._invocation_writes(w, inv, kept)
        for name, revision, manifest in changes.services:
            w.one(_UPSERT_SERVICE, (name, revision, json.dumps(manifest)))
        for wk, state in changes.state:
            self._state_writes(w, wk, state)
        for (svc, key), promises in changes.promises:
            w.one("DELETE FROM promises WHERE service=? AND key=?", (svc, key))
            w.many("INSERT INTO promises VALUES (?, ?, ?, ?, ?)", [
                (svc, key, n, None, json.dumps(_result_record(v))) if isinstance(v, Failure) else
                (svc, key, n, v, None) for n, v in promises.items()])
        meta = {k: v for k, v in changes.meta.items() if self._meta.get(k) != v}
        if meta:
            w.many(_UPSERT_META, [(k, json.dumps(v)) for k, v in meta.items()])
        if not w.ops and not w.new:
            return
        db.execute("BEGIN")
        try:
            rowids = {inv_id: int(db.execute("INSERT INTO invocations VALUES (?, ?)", (inv_id, record)).lastrowid or 0)
                      for inv_id, record in w.new}
            for sql, params, many in w.ops:
                if many:
                    db.executemany(sql, params)
                else:
                    db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException as exc:
            import sqlite3
            if db.in_transaction:  # (SQLite has rolled back by itself after some errors, e.g. a full disk)
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreWriteFailed(self._write_error(exc)) from None
            raise
        # what the file now holds (kept so that the next commit writes only what differs from it)
        self._meta.update(meta)
        for inv_id, written in w.written.items():
            if written is None:
                self._written.pop(inv_id, None)
            else:
                self._written[inv_id] = (*written[:3], rowids[inv_id]) if inv_id in rowids else written
        for wk, state in w.state.items():
            if state:
                self._state[wk] = state
            else:
                self._state.pop(wk, None)
        self.commits += 1

    def meta_changed(self, meta: dict[str, Any]) -> bool:
        return any(self._meta.get(k) != v for k, v in meta.items())

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
            return
        n_entries, n_errors, stored, rowid = written or (0, 0, None, 0)
        fingerprint = _fingerprint(inv)
        journal, errors = inv.journal, inv.errors
        if fingerprint == stored and len(journal) <= n_entries and len(errors) <= n_errors:
            return
        if written is None:
            w.new.append((inv.id, _encode(invocation_record(inv))))  # its rowid is known once it is inserted
        elif fingerprint != stored:
            w.one("UPDATE invocations SET record=? WHERE rowid=?", (_encode(invocation_record(inv)), rowid))
        if len(journal) == n_entries + 1:
            w.one(_INSERT_ENTRY, (inv.id, n_entries, *entry_record(journal[-1])))
        elif len(journal) > n_entries:
            w.many(_INSERT_ENTRY, [(inv.id, i, *entry_record(e)) for i, e in enumerate(journal[n_entries:], n_entries)])
        if len(errors) > n_errors:
            w.many("INSERT INTO errors VALUES (?, ?, ?)",
                   [(inv.id, i, json.dumps(error_record(e))) for i, e in enumerate(errors[n_errors:], n_errors)])
        w.written[inv.id] = (max(len(journal), n_entries), max(len(errors), n_errors), fingerprint, rowid)

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
