"""What the runtime keeps: an idle key leaves nothing behind, and a completed invocation, kept compactly until its
retention passes, still reads the same everywhere. (The sizes themselves are measured by
benchmarks/bench_memory.py, never asserted here.)"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import restate

import playground as pg

box = restate.VirtualObject("MemBox")


@box.handler()
async def put(ctx: restate.ObjectContext, item: str) -> str:
    await ctx.sleep(timedelta(minutes=1))
    ctx.set("item", item)
    return item


@box.handler()
async def quick(ctx: restate.ObjectContext) -> int:
    n = (await ctx.get("n", type_hint=int) or 0) + 1
    ctx.set("n", n)
    return n


echo = restate.Service("MemEcho")


@echo.handler()
async def shout(ctx: restate.Context, text: str) -> str:
    return text.upper()


async def _step() -> str:
    return "stepped"


@box.handler()
async def busy(ctx: restate.ObjectContext, text: str) -> str:
    """One entry of many kinds, ending in a sleep: a test reads the journal before and after it completes."""
    ctx.set("text", text)
    await ctx.get("text", type_hint=str)
    stepped = await ctx.run_typed("step", _step)
    loud = await ctx.service_call(shout, arg=text)
    ctx.service_send(shout, arg="later", send_delay=timedelta(seconds=30))
    ctx.clear("text")
    await ctx.sleep(timedelta(hours=1))
    return f"{stepped} {loud}"


def _keys(rt: pg.Runtime) -> tuple[dict, dict]:
    return rt._keys.inboxes, rt._keys.locks


async def test_an_idle_key_keeps_no_inbox_and_no_lock() -> None:
    rt = pg.Runtime(box)
    for i in range(20):
        assert await rt.object_call(quick, key=f"k{i}") == 1
    assert _keys(rt) == ({}, {})


async def test_an_inbox_goes_once_its_last_queued_invocation_took_the_key() -> None:
    rt = pg.Runtime(box)
    first = await rt.object_send(put, key="a", arg="one")
    second = await rt.object_send(put, key="a", arg="two")
    await rt.settle()
    inboxes, locks = _keys(rt)
    assert locks == {("MemBox", "a"): first.invocation_id}
    assert [inv.id for inv in inboxes[("MemBox", "a")]] == [second.invocation_id]
    await rt.advance(timedelta(minutes=1))  # the first ends; the second takes the key, and the inbox is empty
    assert inboxes == {} and locks == {("MemBox", "a"): second.invocation_id}
    await rt.advance(timedelta(minutes=1))
    assert _keys(rt) == ({}, {})
    assert rt.output(second.invocation_id) == "two"


async def test_an_inbox_whose_queued_invocation_was_cancelled_goes_when_the_key_is_released() -> None:
    rt = pg.Runtime(box)
    first = await rt.object_send(put, key="a", arg="one")
    second = await rt.object_send(put, key="a", arg="two")
    await rt.settle()
    rt.cancel(second.invocation_id)  # never started: it ends at once, and stays queued until the key is free
    await rt.advance(timedelta(minutes=1))
    assert rt.output(first.invocation_id) == "one"
    assert _keys(rt) == ({}, {})
    assert await rt.object_call(quick, key="a") == 1  # the key is free for the next call at once


async def test_a_completed_invocations_journal_reads_as_it_did_before_it_completed() -> None:
    rt = pg.Runtime(box, echo)
    handle = await rt.object_send(busy, key="b", arg="hi")
    await rt.settle()  # waiting in its last sleep (settle does not move time)
    inv = rt.invocation(handle.invocation_id)
    assert not inv.completed and inv.journal[-1].entry_type == "Command: Sleep"
    entries = [(e.type_id, e.msg, e.appended_at, e.due_ms, e.seen_by_attempt, e.name, e.entry_type, e.frame())
               for e in inv.journal]
    reprs = [repr(e) for e in inv.journal]
    live = list(inv.journal)
    table = rt.journal(inv.id)
    sql = rt.sql(f"select * from sys_journal where id = '{inv.id}' order by index")

    await rt.advance(timedelta(hours=1))
    assert inv.completed and rt.output(inv.id) == "stepped HI"
    n = len(entries)
    assert [(e.type_id, e.msg, e.appended_at, e.due_ms, e.seen_by_attempt, e.name, e.entry_type, e.frame())
            for e in inv.journal[:n]] == entries
    assert [repr(e) for e in inv.journal[:n]] == reprs
    assert inv.journal[:n] == live  # entries compare by value
    assert len(inv.journal) == inv.journal_size == n + 2  # and the sleep's completion, the output
    pd.testing.assert_frame_equal(rt.journal(inv.id).iloc[:n], table)
    after = rt.sql(f"select * from sys_journal where id = '{inv.id}' order by index")
    pd.testing.assert_frame_equal(after.iloc[:n], sql)
    assert rt.journal(inv.id).entry_type.iloc[-1] == "Command: Output"


async def test_a_completed_invocation_reads_the_same_after_a_restart_from_its_store(tmp_path) -> None:
    db = tmp_path / "mem.db"
    rt = pg.Runtime(box, echo, store=db)
    assert await rt.object_call(busy, key="c", arg="yo") == "stepped YO"
    [inv] = [i for i in rt.all_invocations() if i.target.handler == "busy"]
    table = rt.journal(inv.id)
    rt.close()
    again = pg.Runtime(box, echo, store=db)
    restored = again.invocation(inv.id)
    assert restored.completed
    pd.testing.assert_frame_equal(again.journal(inv.id), table)
    assert [e.msg for e in restored.journal] == [e.msg for e in inv.journal]


flaky_calls: list[str] = []


@echo.handler()
async def flaky(ctx: restate.Context, text: str) -> str:
    flaky_calls.append(text)
    if flaky_calls.count(text) == 1:
        raise ValueError(f"first attempt of {text}")
    return text


async def test_a_failed_attempt_shows_in_its_own_invocations_errors_only() -> None:
    rt = pg.Runtime(echo)
    assert await rt.service_call(shout, arg="a") == "A"
    assert await rt.service_call(flaky, arg="b") == "b"
    assert await rt.service_call(shout, arg="c") == "C"
    invs = list(rt.all_invocations())
    failed = [inv for inv in invs if inv.errors]
    assert [inv.target.handler for inv in failed] == ["flaky"]
    assert len(failed[0].errors) == 1 and "first attempt of b" in failed[0].errors[0].message
    assert failed[0].last_failure is failed[0].errors[0]
    assert [(inv.errors, inv.last_failure) for inv in invs if inv not in failed] == [([], None), ([], None)]
