"""The records a store keeps, and how the runtime's objects become them and back: an invocation's durable
fields (`RECORD_FIELDS`), its journal entries and errors, a result or failure; what a restore is handed
(`Snapshot`) and what one event changed (`ChangeSet`). Both stores (store.py) and the restore (restore.py)
use them; none of it touches a file.
"""

from __future__ import annotations

import json
import operator
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import NO_DUE, Failure, Invocation, TransientError

if TYPE_CHECKING:
    from .core import Engine as Runtime

EntryRow = tuple[int, bytes, int, "int | None"]  # a journal entry as stored: (type id, frame, appended_at, due_ms)


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
    meta: dict[str, Any]  # now_ms, seed, ids_drawn, inbox_seq; {} when none moved since the last commit


def result_record(result: bytes | Failure | None) -> Any:
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
_encode = json.JSONEncoder(check_circular=False).encode  # (records hold no cycles)


def invocation_record(inv: Invocation) -> dict[str, Any]:
    """The durable part of an invocation (its journal and errors are stored beside it)."""
    target = inv.target
    rec = {"id": inv.id, "service": target.service, "handler": target.handler, "key": target.key,
           **dict(zip(_OWN_FIELDS, _OWN_VALUES(inv), strict=True))}
    rec["start_id"] = inv.start_id.hex()
    rec["result"] = result_record(inv.result)
    rec["waiting_ids"] = [sorted(s) for s in inv.waiting_ids] if inv.waiting_ids is not None else None
    return rec


def invocation_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """An Invocation's constructor arguments from its record, except the target and what registration
    gives (service, handler, deployment) and the runtime; `waiting_ids` is set after construction."""
    fields = {f: rec[f] for f in RECORD_FIELDS if f not in _TARGET_FIELDS and f not in _ENCODED_FIELDS}
    fields["start_id"] = bytes.fromhex(rec["start_id"])
    fields["result"] = result_from(rec["result"])
    return fields


_esc = json.encoder.encode_basestring_ascii  # (C) a JSON string, as json.dumps writes it
_TEMPLATE = "{" + ", ".join(f'"{f}": %s' for f in RECORD_FIELDS) + "}"


def _text(value: str | None) -> str:
    return "null" if value is None else _esc(value)


def _num(value: int | None) -> Any:
    return "null" if value is None else value


def record_text(inv: Invocation) -> str:
    """`invocation_record(inv)` encoded as json.dumps would (the same text), field by field into a template:
    several times cheaper than a dict through the generic encoder, and a commit encodes one or two per event."""
    target = inv.target
    (inv_id, revision, start_id, random_seed, created_at, invoked_by, sent, invoked_by_id, invoked_by_target, idem,
     status, scheduled_at, inboxed_at, inbox_seq, running_at, completed_at, expires_at, completed, result, attempts,
     retries, next_retry_at, waiting_ids) = _OWN_VALUES(inv)
    if type(result) is bytes:
        result_text = '"' + result.hex() + '"'
    else:
        result_text = "null" if result is None else _encode(result_record(result))
    return _TEMPLATE % (
        _esc(inv_id), _esc(target.service), _esc(target.handler), _text(target.key), revision,
        '"' + start_id.hex() + '"', random_seed, created_at, _esc(invoked_by), "true" if sent else "false",
        _text(invoked_by_id), _text(invoked_by_target), _text(idem), _esc(status), _num(scheduled_at),
        _num(inboxed_at), inbox_seq, _num(running_at), _num(completed_at), _num(expires_at),
        "true" if completed else "false", result_text, attempts, retries, _num(next_retry_at),
        "null" if waiting_ids is None else _encode([sorted(s) for s in waiting_ids]))


_FINGERPRINTED = operator.attrgetter(*(f for f in _OWN_FIELDS if f not in ("result", "waiting_ids")))


def record_fingerprint(inv: Invocation) -> tuple[Any, ...]:
    """Stands for an invocation's record (what record_text encodes, its target aside, which never changes):
    equal fingerprints, same record. Its fields as one tuple of immutable values (a result's metadata and
    the awaited ids as frozen copies), compared exactly: much cheaper than encoding them, so an unchanged
    record costs a commit little. (Not a hash of them: a hash may miss a change, e.g. hash(-1) == hash(-2).)"""
    result: Any = inv.result
    if type(result) is Failure:
        result = (result.code, result.message, tuple(sorted(result.metadata.items())))
    waiting: Any = inv.waiting_ids
    if waiting is not None:
        waiting = tuple(frozenset(ids) for ids in waiting)
    return (_FINGERPRINTED(inv), result, waiting)


def error_record(err: TransientError) -> dict[str, Any]:
    return {"attempt": err.attempt, "after_entry": err.after_entry, "at_ms": err.at_ms, "code": err.code,
            "message": err.message, "stacktrace": err.stacktrace, "related_command": err.related_command,
            "related_index": err.related_index, "related_name": err.related_name, "related_type": err.related_type}


# Format 3 keeps the first entries of a journal in its invocation's row (its "head"): the row a commit writes
# anyway carries them, so a short invocation is one statement per commit. An entry: type id, appended_at, due
# time (or NO_DUE), frame length, then the frame.
HEAD_MAX = 2048  # bytes: an entry that would grow the head past this goes to the journal table (as all after it)
_HEAD_ROW = struct.Struct("<HqqI")


def pack_head(rows: list[EntryRow]) -> bytes:
    """Journal entries as a head holds them (appending to a head is concatenating)."""
    pack, no_due = _HEAD_ROW.pack, NO_DUE
    return b"".join([pack(t, at, no_due if due is None else due, len(frame)) + frame for t, frame, at, due in rows])


def unpack_head(head: bytes) -> list[EntryRow]:
    """The entries of a head; ValueError if it is damaged (the store then says the file is corrupt)."""
    rows: list[EntryRow] = []
    pos, size = 0, _HEAD_ROW.size
    try:
        while pos < len(head):
            type_id, at, due, n = _HEAD_ROW.unpack_from(head, pos)
            frame = head[pos + size:pos + size + n]
            if len(frame) != n:
                raise ValueError(f"a journal entry in a stored head is cut off at byte {pos}")
            rows.append((type_id, frame, at, None if due == NO_DUE else due))
            pos += size + n
    except struct.error as exc:
        raise ValueError(f"a stored head of journal entries is damaged ({exc})") from None
    return rows


def snapshot_of(rt: Runtime) -> Snapshot:
    """The records of a runtime's current tables, as a store would have them (what a restart keeps)."""
    invs = list(rt._invocations.values())
    return Snapshot(
        meta=rt.durable_meta(),
        manifests=dict(rt._registry.manifests), revisions=dict(rt._registry.revisions),
        invocations=[invocation_record(i) for i in invs],
        journals={i.id: i.journal_rows(0) for i in invs},
        errors={i.id: [error_record(e) for e in i.errors] for i in invs},
        state={k: dict(v) for k, v in rt._state.items()},
        promises={k: dict(v) for k, v in rt._records.promises.items()},
    )
