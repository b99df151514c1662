"""The store: a runtime reopened on its SQLite file (or restarted with rt.faults.restart) resumes every
invocation by replay, with timers at their original times and completed ctx.run effects never repeated;
a file it cannot use gives a clear error and is left untouched."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
import restate

import playground as pg
from playground.runtime.store_records import pack_head, unpack_head

effects: list[str] = []

shop = restate.Workflow("Shop")


@shop.main()
async def order(ctx: restate.WorkflowContext, item: str) -> str:
    await ctx.run_typed("charge", lambda: effects.append(f"charge {item}") or "charged")
    await ctx.sleep(timedelta(hours=1))
    await ctx.run_typed("ship", lambda: effects.append(f"ship {item}") or "shipped")
    ctx.object_send(note, key="log", arg=f"sent {item}", send_delay=timedelta(hours=2))
    return f"{item} done"


@shop.handler()
async def approve(ctx: restate.WorkflowSharedContext, who: str) -> None:
    await ctx.promise("approval", type_hint=str).resolve(who)


@shop.handler()
async def approval(ctx: restate.WorkflowSharedContext) -> str:
    return await ctx.promise("approval", type_hint=str).value()


log = restate.VirtualObject("Log")


@log.handler()
async def note(ctx: restate.ObjectContext, line: str) -> list[str]:
    lines = (await ctx.get("lines", type_hint=list[str])) or []
    lines.append(line)
    ctx.set("lines", lines)
    return lines


@log.handler()
async def hold(ctx: restate.ObjectContext) -> str:
    """Holds the key until its awakeable is resolved from a cell."""
    name, promise = ctx.awakeable(type_hint=str)
    ctx.set("awakeable", name)
    got = await promise
    lines = (await ctx.get("lines", type_hint=list[str])) or []
    ctx.set("lines", [*lines, f"held {got}"])
    return got


svc = restate.Service("Tools")


@svc.handler()
async def flaky(ctx: restate.Context, n: int) -> int:
    effects.append("flaky")
    tries = effects.count("flaky")
    if tries < 3:
        raise ValueError(f"not yet ({tries})")  # a plain exception: retried on the backoff schedule
    return n


@svc.handler()
async def relay(ctx: restate.Context, item: str) -> str:
    return await ctx.workflow_call(order, key=item, arg=item)


SERVICES = (shop, log, svc)


@pytest.fixture(autouse=True)
def _clear_effects() -> None:
    effects.clear()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "demo.sqlite")


def reopen(db: str, *services: object, **kw: object) -> pg.Runtime:
    return pg.Runtime(*(services or SERVICES), store=db, **kw)


# ---------------------------------------------------------------------------------------------- resuming
async def test_a_reopened_runtime_resumes_a_workflow_without_repeating_a_completed_run(db: str) -> None:
    async def first() -> str:
        rt = reopen(db, clock="manual")
        h = await rt.workflow_send(order, key="book", arg="book")
        await rt.settle()  # charged, now sleeping for an hour that the manual clock does not pass
        assert effects == ["charge book"]
        rt.close()
        return h.invocation_id

    inv_id = await first()

    async def second() -> None:
        rt = reopen(db, clock="manual")
        assert rt.invocation(inv_id).status in ("running", "suspended")
        await rt.advance(timedelta(hours=1))
        assert await rt.attach(inv_id) == "book done"
        assert effects == ["charge book", "ship book"]  # the charge was replayed from the journal, not run
        rt.close()

    await second()


async def test_sleeps_and_delayed_sends_fire_at_their_original_time_after_a_reopen(db: str) -> None:
    async def first() -> None:
        rt = reopen(db)
        await rt.workflow_send(order, key="lamp", arg="lamp")
        await rt.settle()
        rt.close()

    await first()

    async def second() -> None:
        rt = reopen(db)
        start = rt.now
        assert await rt.attach(order, key="lamp") == "lamp done"
        wf = rt.invocation(rt.invocations().query("target_handler_name == 'run' or target_handler_name == 'order'")
                           .id.iloc[0])
        sleep_done = next(e for e in wf.journal if e.entry_type == "Notification: Sleep")
        assert sleep_done.appended_at - int(start.timestamp() * 1000) == 3_600_000
        await rt.advance(timedelta(hours=3))
        assert rt.state("Log", "log") == {"lines": ["sent lamp"]}
        sent = rt.invocation(rt.invocations().query("target_handler_name == 'note'").id.iloc[0])
        assert sent.running_at - sent.created_at == 2 * 3_600_000  # the send's delay, not reset by the reopen
        rt.close()

    await second()


async def test_state_inbox_order_promises_and_idempotency_survive_a_reopen(db: str) -> None:
    async def first() -> tuple[str, str]:
        rt = reopen(db)
        await rt.object_send(hold, key="k")
        await rt.object_send(note, key="k", arg="first")
        await rt.object_send(note, key="k", arg="second")
        await rt.settle()
        assert rt.inbox().shape[0] == 2  # queued behind the holder
        await rt.workflow_send(approve, key="w", arg="ann")
        await rt.settle()
        h = await rt.service_send(flaky, arg=7, idempotency_key="once")
        awakeable = rt.state("Log", "k")["awakeable"]
        rt.close()
        return awakeable, h.invocation_id

    awakeable, idem_id = await first()

    async def second() -> None:
        rt = reopen(db)
        queued = list(rt.inbox().id)  # still queued, in order
        assert [rt.invocation(i).journal[0].msg.value.content for i in queued] == [b'"first"', b'"second"']
        rt.resolve_awakeable(awakeable, "yes")
        await rt.settle()
        assert rt.state("Log", "k")["lines"] == ["held yes", "first", "second"]
        assert await rt.workflow_call(approval, key="w") == "ann"
        again = await rt.service_send(flaky, arg=7, idempotency_key="once")
        assert (again.status, again.invocation_id) == ("PreviouslyAccepted", idem_id)
        rt.close()

    await second()


async def test_new_invocation_ids_after_a_reopen_are_those_of_a_runtime_that_never_stopped(db: str) -> None:
    async def straight() -> list[str]:
        rt = pg.Runtime(*SERVICES, seed=5)
        ids = [(await rt.object_send(note, key="a", arg=str(i))).invocation_id for i in range(4)]
        await rt.settle()
        return ids

    async def first() -> list[str]:
        rt = reopen(db, seed=5)
        ids = [(await rt.object_send(note, key="a", arg=str(i))).invocation_id for i in range(2)]
        rt.close()
        return ids

    async def second() -> list[str]:
        rt = reopen(db, seed=99)  # the stored seed wins: the generator continues where it was
        ids = [(await rt.object_send(note, key="a", arg=str(i))).invocation_id for i in range(2, 4)]
        await rt.settle()
        assert rt.state("Log", "a") == {"lines": ["0", "1", "2", "3"]}
        rt.close()
        return ids

    expected = await straight()
    assert await first() + await second() == expected


async def test_new_ids_continue_the_sequence_after_the_rows_that_carried_the_count_were_purged(db: str) -> None:
    """Format 3: the commit that creates an invocation stores the id generator's count in its row, not in
    meta; once the rows are purged, the count must still be on disk."""
    def drawn_in_meta() -> int:
        with closing(sqlite3.connect(db)) as con:
            return int(con.execute("SELECT value FROM meta WHERE name='ids_drawn'").fetchone()[0])

    async def straight() -> list[str]:
        rt = pg.Runtime(*SERVICES, seed=5)
        ids = [(await rt.object_send(note, key="p", arg=str(i))).invocation_id for i in range(3)]
        await rt.advance(timedelta(days=2))
        return [*ids, (await rt.object_send(note, key="p", arg="3")).invocation_id]

    rt = reopen(db, seed=5)
    ids = [(await rt.object_send(note, key="p", arg=str(i))).invocation_id for i in range(3)]
    await rt.settle()
    rt.close()
    assert drawn_in_meta() < 3  # the rows carry the count
    rt = reopen(db)
    await rt.advance(timedelta(days=2))  # retention over: all three purged
    assert len(rt.invocations()) == 0
    rt.close()
    assert drawn_in_meta() == 3
    rt = reopen(db)
    ids.append((await rt.object_send(note, key="p", arg="3")).invocation_id)
    rt.close()
    assert ids == await straight()


async def test_a_retry_backoff_resumes_at_its_original_time_after_a_reopen(db: str) -> None:
    async def first() -> tuple[str, int]:
        rt = reopen(db, clock="manual")
        h = await rt.service_send(flaky, arg=1)
        await rt.settle()
        inv = rt.invocation(h.invocation_id)
        assert inv.status == "backing-off"
        due = inv.next_retry_at
        rt.close()
        return h.invocation_id, due

    inv_id, due = await first()

    async def second() -> None:
        rt = reopen(db, clock="manual")
        inv = rt.invocation(inv_id)
        assert (inv.status, inv.next_retry_at, inv.attempts) == ("backing-off", due, 1)
        assert len(inv.errors) == 1 and "not yet (1)" in inv.errors[0].message
        now = int(rt.now.timestamp() * 1000)
        await rt.advance(timedelta(milliseconds=due - now - 1))
        assert rt.invocation(inv_id).attempts == 1  # not yet due
        await rt.advance(timedelta(milliseconds=1))
        assert rt.invocation(inv_id).attempts == 2
        await rt.advance(timedelta(seconds=5))
        assert rt.output(inv_id) == 1
        rt.close()

    await second()


async def test_retention_purges_a_completed_invocation_at_its_original_time_after_a_reopen(db: str) -> None:
    async def first() -> str:
        rt = reopen(db)
        h = await rt.object_send(note, key="r", arg="x")
        await rt.settle()
        await rt.advance(timedelta(hours=23))
        rt.close()
        return h.invocation_id

    inv_id = await first()

    async def second() -> None:
        rt = reopen(db)
        assert rt.output(inv_id) == ["x"]
        await rt.advance(timedelta(hours=1))
        with pytest.raises(restate.TerminalError) as err:
            rt.output(inv_id)
        assert err.value.status_code == 404
        rt.close()

    await second()
    with closing(sqlite3.connect(db)) as con, con:  # and the purge reached the file
        assert con.execute("SELECT count(*) FROM invocations").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM journal").fetchone()[0] == 0


async def test_a_call_in_flight_resumes_after_a_reopen_and_the_caller_gets_its_result(db: str) -> None:
    async def first() -> str:
        rt = reopen(db, clock="manual")
        h = await rt.service_send(relay, arg="pen")
        await rt.settle()
        rt.close()
        return h.invocation_id

    inv_id = await first()

    async def second() -> None:
        rt = reopen(db, clock="manual")
        await rt.advance(timedelta(hours=1))
        assert await rt.attach(inv_id) == "pen done"
        assert effects == ["charge pen", "ship pen"]
        rt.close()

    await second()


# ---------------------------------------------------------------------------------------------- restart
def _journal_of(rt: pg.Runtime, service: str) -> list:
    return [e for i in rt._invocations.values() if i.target.service == service for e in i.journal]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_call_awaited_across_a_restart_completes_on_the_restored_runtime(store: str, db: str) -> None:
    rt = pg.Runtime(*SERVICES, store=db if store == "sqlite" else None)
    call = asyncio.ensure_future(rt.workflow_call(order, key="cup", arg="cup"))
    while not any(e.entry_type == "Command: Sleep" for e in _journal_of(rt, "Shop")):
        await asyncio.sleep(0)  # until the charge's result is stored and the workflow sleeps
    await rt.faults.restart()
    assert await call == "cup done"
    assert effects == ["charge cup", "ship cup"]
    inv = rt.invocation(rt.invocations().id.iloc[0])
    assert inv.attempts >= 2  # a new attempt replayed the journal
    rt.close()


async def test_a_suspended_invocation_stays_suspended_across_a_restart(db: str) -> None:
    rt = pg.Runtime(*SERVICES, store=db, mode="always_suspend")
    h = await rt.object_send(hold, key="s")
    await rt.settle()
    inv = rt.invocation(h.invocation_id)
    assert inv.status == "suspended"
    attempts = inv.attempts
    await rt.faults.restart()
    inv = rt.invocation(h.invocation_id)
    assert (inv.status, inv.attempts) == ("suspended", attempts)
    rt.resolve_awakeable(rt.state("Log", "s")["awakeable"], "late")
    assert await rt.attach(h.invocation_id) == "late"
    rt.close()


# ---------------------------------------------------------------------------------------------- missing handlers
async def test_invocations_of_unregistered_handlers_wait_with_a_clear_error_until_registered(db: str) -> None:
    async def first() -> str:
        rt = reopen(db, clock="manual")
        h = await rt.workflow_send(order, key="tea", arg="tea")
        await rt.settle()
        rt.close()
        return h.invocation_id

    inv_id = await first()

    async def second() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rt = pg.Runtime(log, svc, store=db, clock="manual")  # Shop is not registered
        assert [str(w.message) for w in caught if w.category is pg.MissingHandlerWarning] == [
            f"the store {db!r} holds invocations of handlers that are not registered: Shop/order (1). "
            f"They wait; register their services (rt.register(...)) and they resume."]
        await rt.settle()
        inv = rt.invocation(inv_id)
        assert inv.status == "backing-off"
        assert "the handler Shop/order is not registered" in inv.last_failure.message
        with pytest.raises(pg.StuckError, match="its handler Shop/order is not registered"):
            await rt.attach(inv_id)
        rt.register(shop)
        await rt.advance(timedelta(hours=1))
        assert await rt.attach(inv_id) == "tea done"
        assert effects == ["charge tea", "ship tea"]
        rt.close()

    await second()


# ---------------------------------------------------------------------------------------------- bad files
def _unchanged_after_open(path: Path, match: str) -> None:
    before = path.read_bytes()
    with pytest.raises(pg.StoreError, match=match) as err:
        pg.Runtime(*SERVICES, store=str(path))
    assert "left untouched" in str(err.value)
    assert path.read_bytes() == before


def test_a_corrupt_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not a database\n" * 100)
    _unchanged_after_open(path, "not a SQLite database or it is corrupt")


def test_a_database_that_is_not_a_playground_store_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(path)) as con, con:
        con.execute("CREATE TABLE customers (name TEXT)")
    _unchanged_after_open(path, "not a restate-playground store")


async def test_a_store_from_an_incompatible_version_is_reported_and_left_untouched(db: str) -> None:
    await _open_and_close(db)
    with closing(sqlite3.connect(db)) as con, con:
        con.execute("UPDATE meta SET value=? WHERE name='version'", (json.dumps(99),))
    _unchanged_after_open(Path(db), "store format 99, and this restate-playground reads formats 1, 2 and 3;")


async def test_a_damaged_store_is_reported_and_left_untouched(db: str) -> None:
    await _open_and_close(db)
    with closing(sqlite3.connect(db)) as con, con:
        con.execute("DROP TABLE journal")
    _unchanged_after_open(Path(db), r"corrupt: tables \['journal'\] are missing")


async def _open_and_close(db: str) -> None:
    rt = reopen(db)
    await rt.object_send(note, key="x", arg="y")
    await rt.settle()
    rt.close()


async def test_a_store_held_by_another_process_is_reported_and_not_written(db: str) -> None:
    await _open_and_close(db)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, playground as pg
        rt = pg.Runtime(store={db!r})
        print("open", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(pg.StoreError, match="another process has it open"):
            pg.Runtime(*SERVICES, store=db)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # once the holder is gone (even killed), the file opens again with everything in it
    rt = reopen(db)
    assert rt.state("Log", "x") == {"lines": ["y"]}
    rt.close()


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(pg.StoreError, match="it is a directory"):
        pg.Runtime(store=str(tmp_path))


def test_store_must_be_a_path(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="store must be a file path"):
        pg.Runtime(store=42)


async def test_reopening_a_store_in_the_same_process_closes_the_runtime_that_had_it(db: str) -> None:
    old = reopen(db)
    await old.object_send(note, key="o", arg="1")
    await old.settle()
    new = reopen(db)  # as when the cell that creates the runtime is run again
    assert new.state("Log", "o") == {"lines": ["1"]}
    with pytest.raises(RuntimeError, match=r"this Runtime is closed .*another Runtime opened its store"):
        await old.object_send(note, key="o", arg="2")
    new.close()


async def test_the_store_file_is_sqlite_in_wal_mode_and_readable_by_other_tools(db: str) -> None:
    await _open_and_close(db)
    with closing(sqlite3.connect(db)) as con, con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT value FROM meta WHERE name='version'").fetchone() == ("3",)  # a new file
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"invocations", "journal", "state", "promises", "meta"} <= tables
        assert con.execute("SELECT value FROM state WHERE service='Log' AND key='x'").fetchone()[0] == b'["y"]'
    assert os.path.exists(db)


async def test_an_output_stored_just_before_a_crash_completes_the_invocation_on_replay() -> None:
    rt = pg.Runtime(*SERVICES)
    rt.faults.crash_after(note, entry=3)  # 0 Input, 1 GetEagerState, 2 SetState, 3 Output: crash before End
    h = await rt.object_send(note, key="z", arg="once")
    assert await rt.attach(h.invocation_id) == ["once"]
    inv = rt.invocation(h.invocation_id)
    kinds = [e.entry_type for e in inv.journal]
    assert kinds[-1] == "Command: Output" and kinds.count("Command: Output") == 1
    assert [e.message for e in inv.errors] == ["injected crash after journal entry 3 (rt.faults.crash_after)"]
    assert (inv.status, rt.output(h.invocation_id)) == ("completed", ["once"])


async def test_closing_a_runtime_ends_an_await_on_it_with_a_clear_error(db: str) -> None:
    rt = reopen(db)
    call = asyncio.ensure_future(rt.object_call(hold, key="c"))  # waits for an awakeable
    while not rt.state("Log", "c"):
        await asyncio.sleep(0)
    rt.close()
    with pytest.raises(RuntimeError, match=r"this Runtime is closed \(rt.close\(\) was called\)"):
        await call


# ---------------------------------------------------------------------------------------------- issue 13
def _edit_record(db: str, inv_id: str, **fields: object) -> None:
    with closing(sqlite3.connect(db)) as con, con:
        record = json.loads(con.execute("SELECT record FROM invocations WHERE id=?", (inv_id,)).fetchone()[0])
        record.update(fields)
        con.execute("UPDATE invocations SET record=? WHERE id=?", (json.dumps(record), inv_id))


async def test_a_refused_delay_creates_nothing_and_a_stored_time_beyond_the_clock_still_reads(db: str) -> None:
    async def first() -> str:
        rt = reopen(db)
        with pytest.raises(ValueError, match="send_delay would be due after 9999-12-31"):
            await rt.object_send(note, key="x", arg="y", send_delay=timedelta.max)
        handle = await rt.object_send(note, key="x", arg="y", send_delay=timedelta(hours=1))
        rt.close()
        return handle.invocation_id

    inv_id = await first()
    _edit_record(db, inv_id, scheduled_at=10**17, created_at=-(10**17))  # as an older version could write

    async def second() -> None:
        rt = reopen(db)
        row = rt.invocations().iloc[0]
        assert (row.id, row.status, len(rt.invocations())) == (inv_id, "scheduled", 1)
        assert str(row.scheduled_start_at) == "9999-12-31 23:59:59.999000+00:00"  # shown at the clock's limit
        assert str(row.created_at) == "0001-01-01 00:00:00+00:00"
        assert rt.sql("SELECT count(*) AS n FROM sys_invocation").n[0] == 1
        assert rt.now.year == 2026 and "1 scheduled" in repr(rt)
        rt.close()

    await second()


def _journal_on_disk(db: sqlite3.Connection, inv_id: str) -> list[tuple[int, bytes]]:
    """An invocation's stored journal entries, (index, frame): those in its row's head (format 3), then those
    in the journal table."""
    (head,) = db.execute("SELECT head FROM invocations WHERE id=?", (inv_id,)).fetchone()
    in_head = [(i, frame) for i, (_, frame, _, _) in enumerate(unpack_head(bytes(head or b"")))]
    return in_head + [(i, bytes(f)) for i, f in db.execute(
        "SELECT idx, frame FROM journal WHERE invocation_id=? ORDER BY idx", (inv_id,))]


def _replace_entry_1(db: sqlite3.Connection, damage: Callable[[bytes], bytes]) -> str:
    """Replace the frame of entry 1 of the one invocation stored (it is in its row's head); its id."""
    ((inv_id, head),) = db.execute("SELECT id, head FROM invocations").fetchall()
    rows = unpack_head(bytes(head))
    type_id, frame, at, due = rows[1]
    rows[1] = (type_id, damage(frame), at, due)
    db.execute("UPDATE invocations SET head=? WHERE id=?", (pack_head(rows), inv_id))
    return str(inv_id)


def _flip_body_byte(frame: bytes) -> bytes:
    damaged = bytearray(frame)
    damaged[8] ^= 0xFF  # one flipped byte in the entry's protobuf body
    return bytes(damaged)


async def test_a_damaged_journal_entry_is_a_store_error_naming_it_and_the_file_is_closed_and_untouched(db: str) -> None:
    await _open_and_close(db)
    with closing(sqlite3.connect(db)) as con, con:
        inv_id = _replace_entry_1(con, _flip_body_byte)
        assert len(_journal_on_disk(con, inv_id)) == 4
    _unchanged_after_open(Path(db), rf"corrupt \(journal entry 1 of invocation {inv_id} \(Log/x/note\) "
                                    rf"cannot be decoded: Error parsing message")
    reader = subprocess.run([sys.executable, "-c", f"import sqlite3; print(sqlite3.connect({db!r}, timeout=0)"
                             f".execute('SELECT count(*) FROM invocations').fetchone()[0])"],
                            capture_output=True, text=True, timeout=60)
    assert (reader.returncode, reader.stdout.strip()) == (0, "1"), reader.stderr  # not locked: the file was closed


filler = restate.VirtualObject("Filler")


@filler.handler()
async def fill(ctx: restate.ObjectContext, size: int) -> int:
    ctx.set("blob", "x" * size)
    return size


def _disk_full_after(rt: pg.Runtime, spare_pages: int = 0) -> None:
    """SQLite says "database or disk is full" once the file would grow past its current size (what a full
    disk does, deterministically and without root)."""
    db = rt._store._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages + spare_pages}")


def _records(snap: object) -> tuple[object, ...]:
    errors = {k: v for k, v in snap.errors.items() if v}  # (a store has no row for an empty list)
    return (snap.invocations, snap.journals, errors, snap.state, snap.promises, snap.meta["now_ms"])


async def test_a_full_disk_is_a_store_error_and_the_runtime_then_shows_what_the_file_holds(db: str) -> None:
    from playground.runtime.store import SqliteStore, snapshot_of

    rt = pg.Runtime(*SERVICES, filler, store=db)
    await rt.object_call(note, key="a", arg="kept")
    _disk_full_after(rt, spare_pages=2)
    accepted = []
    with pytest.raises(pg.StoreError) as err:  # noqa: PT012 (writes until the disk is full)
        for i in range(100):
            accepted.append((await rt.object_send(note, key=f"k{i}", arg="x" * 3000)).invocation_id)
            await rt.advance(timedelta(seconds=1))
    assert accepted, "the disk filled up at once; give it more spare pages"
    assert str(err.value).startswith(f"the store {db!r} could not be written: the disk is full (SQLite: "
                                     f"database or disk is full). The last event was not stored")
    assert "open the store again with pg.Runtime(..., store=" in str(err.value)
    with pytest.raises(pg.StoreError, match="the disk is full"):  # it refuses further work, saying why
        await rt.object_send(note, key="b", arg="more")
    in_memory = _records(snapshot_of(rt))
    on_disk = SqliteStore(db)
    try:
        assert in_memory == _records(on_disk.load())  # memory and disk agree
    finally:
        on_disk.close()
    again = pg.Runtime(*SERVICES, filler, store=db)  # nothing committed is lost
    assert set(accepted) <= set(again.invocations().id)
    for inv_id in accepted:
        assert await again.attach(inv_id) == ["x" * 3000]
    assert again.state("Log", "a") == {"lines": ["kept"]}
    again.close()


async def test_a_full_disk_while_a_handler_runs_ends_the_await_with_a_store_error(db: str) -> None:
    rt = pg.Runtime(*SERVICES, filler, store=db)
    assert await rt.object_call(fill, key="f", arg=10) == 10
    _disk_full_after(rt)
    with pytest.raises(pg.StoreError, match="could not be written: the disk is full"):
        await rt.object_call(fill, key="f", arg=100_000)  # its SetState does not fit
    assert rt.state("Filler", "f") == {"blob": "x" * 10}  # as stored
    first, second = rt.all_invocations()  # the second is stored with its Input, and no further
    assert (first.status, second.status, len(second.journal)) == ("completed", "running", 1)
    rt.close()
    again = pg.Runtime(*SERVICES, filler, store=db)  # with room on the disk, it runs on from there
    assert again.state("Filler", "f") == {"blob": "x" * 10}
    assert await again.attach(second.id) == 100_000
    assert again.state("Filler", "f") == {"blob": "x" * 100_000}
    again.close()


def test_an_empty_store_file_opens_as_a_new_store_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "truncated.sqlite"
    path.write_bytes(b"")
    with pytest.warns(UserWarning, match=r"the store file .*truncated.sqlite' is empty \(0 bytes\), so it starts "
                                         r"as a new, empty store; if it held a store before \(was it truncated\?\)"):
        rt = pg.Runtime(*SERVICES, store=str(path))
    assert len(rt.invocations()) == 0
    rt.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new file, or a store with records, opens without a word
        pg.Runtime(*SERVICES, store=str(path)).close()
        pg.Runtime(*SERVICES, store=str(tmp_path / "new.sqlite")).close()


async def test_a_damaged_journal_entry_found_by_a_restart_stops_the_runtime_with_a_store_error(db: str) -> None:
    rt = reopen(db)
    await rt.object_send(note, key="x", arg="y")
    await rt.settle()
    inv_id = rt.invocations().id[0]
    assert _replace_entry_1(rt._store._db, lambda _: b"\x04\x07" + b"\x00" * 6 + b"\xff") == inv_id
    with pytest.raises(pg.StoreError, match=rf"journal entry 1 of invocation {inv_id} \(Log/x/note\) cannot "
                                           rf"be decoded"):
        await rt.faults.restart()
    with pytest.raises(pg.StoreError, match="journal entry 1"):  # and it stays stopped, saying why
        await rt.object_send(note, key="x", arg="z")
    with closing(sqlite3.connect(db, timeout=0)) as con:  # the file was closed: it is not locked
        assert len(_journal_on_disk(con, inv_id)) == 4


# ---------------------------------------------------------------------------------------------- issue 17: batching
batch = restate.VirtualObject("Batch")
current: dict[str, pg.Runtime] = {}  # the runtime a handler below looks into (its own store's file)


def _on_disk(rt: pg.Runtime, sql: str, *args: object) -> list[tuple]:
    """What the store's file holds right now (read through its own connection: it is locked to others)."""
    return rt._store._db.execute(sql, args).fetchall()


@batch.handler()
async def set_many(ctx: restate.ObjectContext, n: int) -> int:
    for i in range(n):
        ctx.set(f"s{i}", i)
    return n


@batch.handler()
async def set_then_run(ctx: restate.ObjectContext, marker: str) -> list[int]:
    ctx.set("before", marker)
    await ctx.run_typed("step", lambda: marker)
    # the run's result reached the handler: the SetState before it, the Run command and its completion are
    # stored (the driver's read waits for that), so a crash from here on never runs the step again
    rt = current["rt"]
    return [len(_on_disk(rt, "SELECT 1 FROM state WHERE service='Batch' AND key=? AND name='before'", ctx.key())),
            len(_journal_on_disk(rt._store._db, ctx.request().id))]


@batch.handler()
async def big_then_run(ctx: restate.ObjectContext, size: int) -> None:
    ctx.set("blob", "x" * size)
    await ctx.run_typed("step", lambda: effects.append("step ran") or "ok")
    effects.append("after the step")  # never reached when the step's result could not be stored


echo = restate.Service("Echo")


@echo.handler()
async def shout(ctx: restate.Context, word: str) -> str:
    return word.upper()


async def test_a_short_invocation_is_one_statement_per_commit(db: str) -> None:
    """Format 3: the commit that creates it inserts its row, its Input in the row's head and the id count in
    a column; the one that ends it updates that row. Each statement is a transaction by itself."""
    rt = pg.Runtime(echo, store=db)
    assert await rt.service_call(shout, arg="warm") == "WARM"  # (a new store's first commits: clock, services)
    statements: list[str] = []
    rt._store._db.set_trace_callback(statements.append)
    before = rt._store.commits
    assert await rt.service_call(shout, arg="hi") == "HI"
    rt._store._db.set_trace_callback(None)
    assert rt._store.commits - before == 2
    assert [sql.split(" (")[0].split(" SET")[0] for sql in statements] == [
        "INSERT INTO invocations VALUES", "UPDATE invocations"]
    (inv_id,) = rt.invocations().query("status == 'completed'").id[-1:]
    rt.close()
    again = pg.Runtime(echo, store=db)
    assert again.output(inv_id) == "HI"
    assert [e.entry_type for e in again._invocations[inv_id].journal] == ["Command: Input", "Command: Output"]
    again.close()


async def test_the_messages_of_an_attempt_are_written_in_one_transaction_with_its_end(db: str) -> None:
    rt = pg.Runtime(batch, store=db)
    before = rt._store.commits
    assert await rt.object_call(set_many, key="m", arg=100) == 100
    # one commit creates the invocation (before the SDK hears of it), one stores its 100 SetState, Output and End
    assert rt._store.commits - before == 2
    assert _on_disk(rt, "SELECT count(*) FROM state WHERE key='m'") == [(100,)]
    db_ = rt._store._db
    db_.execute("CREATE TEMP TABLE touched (op TEXT)")
    for op in ("INSERT", "UPDATE", "DELETE"):
        db_.execute(f"CREATE TEMP TRIGGER state_{op} AFTER {op} ON main.state BEGIN "
                    f"INSERT INTO touched VALUES ('{op}'); END")
    before = rt._store.commits
    assert await rt.object_call(set_many, key="m", arg=100) == 100  # the same values again
    assert rt._store.commits - before == 2
    assert _on_disk(rt, "SELECT count(*) FROM touched") == [(0,)]  # so no state row was written
    assert await rt.object_call(set_many, key="m", arg=50) == 50  # the same 50 values: nothing either
    assert _on_disk(rt, "SELECT count(*) FROM touched") == [(0,)]
    from playground.runtime.operations import replace_state
    replace_state(rt, "Batch", "m", {**rt.stored_state("Batch", "m"), "s7": b"70"})  # the admin API's state edit
    assert _on_disk(rt, "SELECT op FROM touched") == [("UPDATE",)]  # one value changed: one row written
    rt.close()
    again = pg.Runtime(batch, store=db)
    assert again.state("Batch", "m") == {**{f"s{i}": i for i in range(100)}, "s7": 70}
    again.close()


def _no_end_of_turn_commits(rt: pg.Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave out the commit at the end of a loop turn, so only the one before the SDK reads can store what
    the SDK sent (which of the two comes first depends on the order of the loop's callbacks)."""
    monkeypatch.setattr(rt._recovery, "_flush_soon", lambda: None)


async def test_what_the_sdk_reads_back_is_on_disk_before_it_reads_it(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = current["rt"] = pg.Runtime(batch, store=db)
    _no_end_of_turn_commits(rt, monkeypatch)
    try:
        assert await rt.object_call(set_then_run, key="r", arg="m") == [1, 4]  # Input, SetState, Run, completion
    finally:
        current.clear()
        rt.close()


async def test_a_result_a_cell_gets_and_an_accepted_send_are_on_disk_when_it_gets_them(db: str) -> None:
    rt = reopen(db)
    handle = await rt.object_send(note, key="s", arg="one", send_delay=timedelta(hours=1))
    assert _on_disk(rt, "SELECT count(*) FROM invocations WHERE id=?", handle.invocation_id) == [(1,)]
    assert await rt.object_call(note, key="c", arg="x") == ["x"]
    (inv_id,) = rt.invocations().query("target_service_key == 'c'").id
    ((record,),) = _on_disk(rt, "SELECT record FROM invocations WHERE id=?", inv_id)
    assert json.loads(record)["status"] == "completed"
    assert _on_disk(rt, "SELECT value FROM state WHERE key='c'") == [(b'["x"]',)]
    await rt.object_send(note, key="d", arg="y")
    await rt.settle()  # what ran is on disk when settle returns
    assert _on_disk(rt, "SELECT value FROM state WHERE key='d'") == [(b'["y"]',)]
    rt.close()


async def test_closing_a_runtime_first_commits_what_its_handlers_sent(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = reopen(db)
    _no_end_of_turn_commits(rt, monkeypatch)
    call = asyncio.ensure_future(rt.object_call(hold, key="h"))  # sets a name, then waits for its awakeable
    while not rt.state("Log", "h"):
        await asyncio.sleep(0)
    assert _on_disk(rt, "SELECT count(*) FROM state WHERE key='h'") == [(0,)]  # sent, not yet committed
    rt.close()
    with pytest.raises(RuntimeError, match="closed"):
        await call
    again = reopen(db)
    assert set(again.state("Log", "h")) == {"awakeable"}
    again.close()


async def test_a_step_result_that_cannot_be_stored_never_reaches_the_handler(db: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rt = pg.Runtime(batch, filler, store=db)
    _no_end_of_turn_commits(rt, monkeypatch)
    assert await rt.object_call(fill, key="f", arg=10) == 10
    _disk_full_after(rt)
    with pytest.raises(pg.StoreError, match="could not be written: the disk is full"):
        await rt.object_call(big_then_run, key="b", arg=100_000)
    # the step ran (its result was proposed), but the handler never went on with it: the attempt was cut off
    # when its result, with the SetState before it, could not be written
    assert effects == ["step ran"]
    rt.close()


async def test_a_journal_written_over_many_commits_is_appended_and_reloads_entry_for_entry(db: str) -> None:
    rt = reopen(db)
    await rt.workflow_send(order, key="lamp", arg="lamp")
    await rt.settle()  # charged, asleep
    (inv_id,) = rt.invocations().query("target_service_name == 'Shop'").id
    asleep = _journal_on_disk(rt._store._db, inv_id)
    await rt.advance(timedelta(hours=1))  # shipped, done
    frames = [e.frame() for e in rt._invocations[inv_id].journal]
    done = _journal_on_disk(rt._store._db, inv_id)
    assert len(asleep) < len(done) == len(frames)
    assert done[:len(asleep)] == asleep  # the entries stored first are left as they were: the rest appended
    assert [(idx, bytes(f)) for idx, f in done] == list(enumerate(frames))
    rt.close()
    again = reopen(db)
    assert [e.frame() for e in again._invocations[inv_id].journal] == frames
    assert again.output(order, key="lamp") == "lamp done"
    again.close()


async def test_entries_past_an_invocations_head_go_to_the_journal_table_and_reload_in_order(db: str) -> None:
    """Format 3 keeps a journal's first entries in its invocation's row, up to HEAD_MAX bytes; an entry that
    does not fit, and every one after it, goes to the journal table."""
    rt = pg.Runtime(batch, store=db)
    assert await rt.object_call(big_then_run, key="h", arg=3000) is None  # a SetState larger than a head
    (inv_id,) = rt.invocations().id
    frames = [e.frame() for e in rt._invocations[inv_id].journal]
    (head,) = _on_disk(rt, "SELECT head FROM invocations WHERE id=?", inv_id)[0]
    in_table = _on_disk(rt, "SELECT idx FROM journal WHERE invocation_id=? ORDER BY idx", inv_id)
    assert len(unpack_head(bytes(head))) == 1  # the Input, stored when the invocation was created
    assert [i for (i,) in in_table] == list(range(1, len(frames)))
    assert _journal_on_disk(rt._store._db, inv_id) == list(enumerate(frames))
    rt.close()
    again = pg.Runtime(batch, store=db)
    assert [e.frame() for e in again._invocations[inv_id].journal] == frames
    again.close()


async def test_a_record_that_is_not_json_is_a_store_error_and_the_file_is_left_untouched(db: str) -> None:
    await _open_and_close(db)
    with closing(sqlite3.connect(db)) as con, con:
        con.execute("UPDATE invocations SET record='{\"id\": '")
    _unchanged_after_open(Path(db), r"it is corrupt \(JSONDecodeError")


@pytest.mark.parametrize("fixture", ["store_v1.sqlite", "store_v2.sqlite"])
async def test_a_store_written_by_a_previous_version_loads_and_resumes(tmp_path: Path, fixture: str) -> None:
    """fixtures/store_v1.sqlite was written by the store code before issue 17 (main 32abc5e), store_v2.sqlite
    by the version before format 3 (main 2f110b1): a call to Log/a, the workflow Shop/book charged and asleep
    for an hour, a send to Log/b due in 30 minutes, and an idempotent send to Log/c."""
    version = fixture[len("store_v"):-len(".sqlite")]
    db = tmp_path / "old.sqlite"
    db.write_bytes((Path(__file__).parent / "fixtures" / fixture).read_bytes())
    rt = reopen(str(db))
    seen = rt.invocations()
    assert sorted(zip(seen.target, seen.status, strict=True)) == [
        ("Log/a/note", "completed"), ("Log/b/note", "scheduled"), ("Log/c/note", "completed"),
        ("Shop/book/order", "running")]
    assert rt.state("Log", "a") == {"lines": ["one"]}
    again = await rt.object_send(note, key="c", arg="idem", idempotency_key="k1")
    assert again.status == "PreviouslyAccepted"
    await rt.advance(timedelta(hours=1))
    assert rt.output(order, key="book") == "book done"
    assert effects == ["ship book"]  # the charge stored by the old version is not repeated
    assert rt.state("Log", "b") == {"lines": ["later"]}
    rt.close()
    with closing(sqlite3.connect(db)) as con:  # still in its format: the version that wrote it can read it
        assert con.execute("SELECT value FROM meta WHERE name='version'").fetchone() == (version,)
        # (and its id count in meta, where that version reads it: Log/a, Log/b, then the workflow's send to
        # Log/log, the one plain id drawn by this version)
        assert con.execute("SELECT value FROM meta WHERE name='ids_drawn'").fetchone() == ("3",)
        assert "head" not in {r[1] for r in con.execute("PRAGMA table_info(invocations)")}
    reread = reopen(str(db))  # what the new version wrote over the old rows reads back
    assert reread.state("Log", "b") == {"lines": ["later"]}
    assert reread.output(order, key="book") == "book done"
    # the four, and the workflow's send to Log/log, two hours after its ship step
    assert sorted(reread.invocations().status) == ["completed"] * 4 + ["scheduled"]
    reread.close()
