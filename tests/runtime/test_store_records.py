"""The store's record encoding: `record_text`, the template a commit writes, gives exactly the text the generic
JSON encoder gives for `invocation_record`, for every kind of field value a record holds."""

from __future__ import annotations

import json
from datetime import timedelta

import restate

import playground as pg
from playground.runtime.model import Failure
from playground.runtime.store_records import invocation_record, record_text

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
