"""The store's record encoding: `record_text`, the template a commit writes, gives exactly the text the generic
JSON encoder gives for `invocation_record`, for every kind of field value a record holds."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import restate

import playground as pg
from playground.runtime.model import Failure
from playground.runtime.store_records import (
    RECORD_FIELDS,
    invocation_record,
    record_fingerprint,
    record_text,
)

book = restate.VirtualObject("RecordsBook")


@book.handler()
async def put(ctx: restate.ObjectContext, line: str) -> str:
    if line == "bad":
        raise restate.TerminalError("refused \u00e9 \"quoted\"", 422, metadata={"why": "bad\nline"})
    name, promise = ctx.awakeable(type_hint=str)
    ctx.set("awakeable", name)
    await ctx.sleep(timedelta(seconds=1))
    return line + await promise


async def test_record_text_is_the_generic_encoding_of_every_record() -> None:
    rt = pg.Runtime(book, mode="always_suspend")
    await rt.object_send(put, key="k\u00fc", arg="a", idempotency_key="once \"1\"")
    await rt.object_send(put, key="k\u00fc", arg="b", send_delay=timedelta(minutes=5))
    await rt.object_send(put, key="k\u00fc", arg="c")  # (queued behind "a": an inbox place)
    with_failure = await rt.object_send(put, key="other", arg="bad")
    await rt.settle()
    invs = list(rt._invocations.values())
    # suspended (its awaited ids), scheduled (a time), pending in an inbox (its place), failed (a Failure)
    assert sorted(inv.status for inv in invs) == ["completed", "pending", "scheduled", "suspended"]
    assert any(inv.waiting_ids is not None for inv in invs) and any(inv.inbox_seq for inv in invs)
    assert isinstance(rt._invocations[with_failure.invocation_id].result, Failure)
    encode = json.JSONEncoder(check_circular=False).encode
    for inv in invs:
        assert record_text(inv) == encode(invocation_record(inv))


def _other(name: str, value: object) -> object:
    """A different value of the same kind, for any field of a record."""
    if value is None:
        return {"invoked_by_id": "inv_1", "invoked_by_target": "T/h", "idempotency_key": "k", "result": b"r",
                "waiting_ids": ({1}, set(), set())}.get(name, 1)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, bytes):
        return value + b"x"
    if isinstance(value, Failure):
        return Failure(value.code, value.message, {**value.metadata, "more": "1"})
    if isinstance(value, tuple):
        return ({1, 2}, {3}, {"other"})
    return None


async def test_a_change_to_any_field_of_a_record_changes_its_fingerprint_and_its_text() -> None:
    """The store writes a record again only when its fingerprint moved: every durable field must move it."""
    rt = pg.Runtime(book, mode="always_suspend")
    await rt.object_send(put, key="a", arg="a")
    failed = await rt.object_send(put, key="b", arg="bad")
    await rt.settle()
    for inv in rt._invocations.values():
        for name in RECORD_FIELDS:
            if name in ("id", "service", "handler", "key"):  # (its id and target never change)
                continue
            changed = copy.copy(inv)
            setattr(changed, name, _other(name, getattr(inv, name)))
            assert record_fingerprint(changed) != record_fingerprint(inv), name
            assert record_text(changed) != record_text(inv), name
            assert record_fingerprint(copy.copy(changed)) == record_fingerprint(changed)
    assert isinstance(rt._invocations[failed.invocation_id].result, Failure)


async def test_the_rows_a_commit_writes_from_a_packed_journal_are_those_of_its_entries() -> None:
    rt = pg.Runtime(book)
    await rt.object_send(put, key="a", arg="a")
    await rt.settle()
    (inv,) = rt._invocations.values()
    running = [(e.type_id, e.frame(), e.appended_at, e.due_ms) for e in inv.journal]
    assert len(running) == 3 and inv.journal_rows(1) == running[1:]  # a list: Input, SetState, Sleep
    await rt.advance(timedelta(seconds=1))
    name = rt.state("RecordsBook", "a")["awakeable"]
    rt.resolve_awakeable(name, "!")
    await rt.settle()
    assert inv.completed and type(inv._journal) is bytes  # packed
    entries = [(e.type_id, e.frame(), e.appended_at, e.due_ms) for e in inv.journal]
    assert entries[:len(running)] == running
    for start in range(len(entries) + 1):
        assert inv.journal_rows(start) == entries[start:]
    assert any(row[3] is not None for row in entries)  # (the sleep's due time survives the packing)
