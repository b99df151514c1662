"""The SQLite file a durable store keeps its records in: its schema, the formats this version reads and
writes (1, 2 and 3), opening and checking a file, and reading its records back. Writing them, a commit at a
time, is the store's (store.py).
"""

from __future__ import annotations

import json
import os
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .store_records import Snapshot, result_from, unpack_head

if TYPE_CHECKING:
    import sqlite3  # imported where a SQLite store is opened or read: the default store needs none of it

FORMAT = "restate-playground-store"
VERSION = 3  # what a new file is written in
# Format 1 (before issue 17) had an index on the invocation id and a journal table keyed by rowid. The rows are
# the same, and this version reads and writes both layouts alike (by rowid): a format-1 file stays format 1,
# still readable by the versions before. Format 2 leaves the index out, as each commit would write one of its
# pages more (the store finds an invocation's row by the rowid it keeps), so older versions refuse it.
# Format 3 adds two columns to an invocation's row: `head`, the first entries of its journal (up to
# store_records.HEAD_MAX bytes; the entries after them are in the journal table), and `drawn`, the id
# generator's count when the row was inserted, so the commit that creates an invocation need not write the
# count to `meta` as well (the count is the larger of the two). A short invocation is then one statement per
# commit. A format-1 or format-2 file stays in its format (no heads; the count in meta at every commit).
READS = (1, 2, 3)

SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE services (name TEXT PRIMARY KEY, revision INTEGER NOT NULL, manifest TEXT NOT NULL);
CREATE TABLE invocations (id TEXT NOT NULL, record TEXT NOT NULL, head BLOB, drawn INTEGER);
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
TABLES = {"meta", "services", "invocations", "journal", "errors", "state", "promises"}


def cannot_open(path: str, why: str) -> StoreError:
    return StoreError(f"cannot open the store {path!r}: {why}. The file was left untouched.")


def _refused(db: sqlite3.Connection | None, path: str, why: str) -> StoreError:
    """The file cannot be used: the connection is closed (and with it the lock), nothing was written."""
    if db is not None:
        db.close()
    return cannot_open(path, why)


def open_file(path: str) -> tuple[sqlite3.Connection, dict[str, Any]]:
    """The store file at `path`, opened in WAL mode and locked for as long as the connection is open, and
    the meta it holds ({} for a new file, which gets the schema of format VERSION). A StoreError if it
    cannot be used as a store: the file is left untouched."""
    import sqlite3
    if os.path.isdir(path):
        raise StoreError(f"cannot open the store {path!r}: it is a directory; pass a file name such as "
                         f"'demo.sqlite'")
    existed = os.path.exists(path) and os.path.getsize(path) > 0
    if os.path.exists(path) and not existed:
        warnings.warn(f"the store file {path!r} is empty (0 bytes), so it starts as a new, empty store; "
                      f"if it held a store before (was it truncated?), what it held is gone",
                      UserWarning, stacklevel=5)
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")  # takes the file's lock, held until close
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _refused(db, path, "another process has it open (a runtime there still runs on it); stop that "
                                     "runtime (rt.close() or restart its kernel), or open another file") from None
        raise _refused(db, path, f"SQLite could not open it ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise _refused(db, path, f"it is not a SQLite database or it is corrupt ({exc})") from None
    try:
        meta = _checked_or_created(db, path, existed)
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    except StoreError:
        raise
    except sqlite3.DatabaseError as exc:
        raise _refused(db, path, f"it is not a SQLite database or it is corrupt ({exc})") from None
    return db, meta


def _checked_or_created(db: sqlite3.Connection, path: str, existed: bool) -> dict[str, Any]:
    """A file that holds anything must be a store in a format this version reads; an empty one gets the
    schema. Its meta ({} when new)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if existed or tables:
        return _checked(db, path, tables)
    for statement in SCHEMA.split(";"):  # (executescript would end the transaction holding the lock)
        if statement.strip():
            db.execute(statement)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", json.dumps(FORMAT)), ("version", json.dumps(VERSION))])
    return {}


def _listed(versions: tuple[int, ...]) -> str:
    """1, 2 and 3."""
    *rest, last = map(str, versions)
    return f"{', '.join(rest)} and {last}" if rest else last


def _checked(db: sqlite3.Connection, path: str, tables: set[str]) -> dict[str, Any]:
    if "meta" not in tables:
        raise _refused(db, path, "it is a SQLite database, but not a restate-playground store")
    meta = {k: json.loads(v) for k, v in db.execute("SELECT name, value FROM meta")}
    if meta.get("format") != FORMAT:
        raise _refused(db, path, "it is a SQLite database, but not a restate-playground store")
    if meta.get("version") not in READS:
        raise _refused(db, path, f"it was written in store format {meta.get('version')}, and this "
                                 f"restate-playground reads formats {_listed(READS)}; open it with "
                                 f"the version that wrote it, or use a new file")
    if not tables >= TABLES:
        raise _refused(db, path, f"it is corrupt: tables {sorted(TABLES - tables)} are missing")
    check = db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise _refused(db, path, f"it is corrupt (SQLite's integrity check says: {check})")
    return meta


def read_records(db: sqlite3.Connection, snap: Snapshot) -> dict[str, int]:
    """Read every stored record into `snap`; the rowid of each invocation's row. sqlite3, JSON and key
    errors pass through, and a damaged head is a ValueError: the caller says the file is corrupt."""
    for name, rev, manifest in db.execute("SELECT name, revision, manifest FROM services"):
        snap.manifests[name] = json.loads(manifest)
        snap.revisions[name] = rev
    rowids = {}
    heads = snap.meta.get("version", VERSION) >= 3
    columns = "rowid, record, head, drawn" if heads else "rowid, record, NULL, NULL"
    drawn = snap.meta.get("ids_drawn", 0)
    for rowid, record, head, count in db.execute(f"SELECT {columns} FROM invocations ORDER BY rowid"):
        rec = json.loads(record)
        snap.invocations.append(rec)
        rowids[rec["id"]] = rowid
        if head:  # (its first entries: those in the journal table come after them)
            snap.journals[rec["id"]] = unpack_head(bytes(head))
        if count is not None and count > drawn:
            drawn = count
    if heads:
        snap.meta["ids_drawn"] = drawn
    for inv_id, type_id, frame, at, due in db.execute(
            "SELECT invocation_id, type_id, frame, appended_at, due_ms FROM journal ORDER BY invocation_id, idx"):
        snap.journals.setdefault(inv_id, []).append((type_id, bytes(frame), at, due))
    for inv_id, record in db.execute("SELECT invocation_id, record FROM errors ORDER BY invocation_id, idx"):
        snap.errors.setdefault(inv_id, []).append(json.loads(record))
    for svc, key, name, value in db.execute("SELECT service, key, name, value FROM state ORDER BY rowid"):
        snap.state.setdefault((svc, key), {})[name] = bytes(value)
    for svc, key, name, value, failure in db.execute(
            "SELECT service, key, name, value, failure FROM promises ORDER BY rowid"):
        snap.promises.setdefault((svc, key), {})[name] = (
            result_from(json.loads(failure)) if failure is not None else bytes(value))  # type: ignore[assignment]
    return rowids
