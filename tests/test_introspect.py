"""Restate-shaped tables and rt.sql over a known scenario."""

from __future__ import annotations

import builtins
from datetime import timedelta

import pytest
import restate

import playground as pg
from playground import failures_view, introspect
from playground.runtime.model import TransientError

box = restate.VirtualObject("IBox")


@box.handler()
async def hold(ctx: restate.ObjectContext, item: str) -> str:
    ctx.set("last", item)
    await ctx.sleep(timedelta(minutes=1))
    return item


@box.handler()
async def flaky(ctx: restate.ObjectContext) -> str:
    if not failures:
        failures.append(1)
        raise ValueError("first attempt")
    return "ok"


failures: list[int] = []
wf = restate.Workflow("IWf")


@wf.main()
async def run(ctx: restate.WorkflowContext) -> str:
    return await ctx.promise("go").value()


async def scenario() -> pg.Runtime:
    failures.clear()
    rt = pg.Runtime(box, wf)
    await rt.object_send(hold, key="k", arg="first", idempotency_key="idem-1")
    await rt.object_send(hold, key="k", arg="second")
    await rt.object_send(hold, key="k", arg="third")
    await rt.workflow_send(run, key="w")
    await rt.settle()
    await rt.object_call(flaky, key="f")
    return rt


async def test_inbox_and_lock_tables_show_the_queue_and_its_holder() -> None:
    rt = await scenario()
    inbox = rt.inbox()
    assert list(inbox.sequence_number) == [0, 1] and set(inbox.service_key) == {"k"}
    args = [rt.journal(i).payload.iloc[0] for i in inbox.id]
    assert args == ["second", "third"]
    locks = rt.sql("SELECT service_key, invocation_id FROM sys_keyed_service_status "
                   "WHERE service_name = 'IBox'")
    holder = rt.invocations().query("target == 'IBox/k/hold' and status == 'running'").id.iloc[0]
    assert locks.to_dict("records") == [{"service_key": "k", "invocation_id": holder}]


async def test_sql_runs_restate_style_queries_over_the_tables() -> None:
    rt = await scenario()
    df = rt.sql("SELECT target_handler_name, status, count(*) AS n FROM sys_invocation "
                "GROUP BY ALL ORDER BY target_handler_name, status")
    assert df.to_dict("records") == [
        {"target_handler_name": "flaky", "status": "completed", "n": 1},
        {"target_handler_name": "hold", "status": "pending", "n": 2},
        {"target_handler_name": "hold", "status": "running", "n": 1},
        {"target_handler_name": "run", "status": "running", "n": 1},
    ]
    state = rt.sql("SELECT service_key, key, value_utf8 FROM state WHERE service_name = 'IBox'")
    assert state.to_dict("records") == [{"service_key": "k", "key": "last", "value_utf8": '"first"'}]
    idem = rt.sql("SELECT service_handler, idempotency_key FROM sys_idempotency")
    assert idem.to_dict("records") == [{"service_handler": "hold", "idempotency_key": "idem-1"}]
    prom = rt.sql("SELECT key, completed FROM sys_promise")
    assert prom.to_dict("records") == [{"key": "go", "completed": False}]
    entries = rt.sql("SELECT entry_type FROM sys_journal WHERE id = (SELECT id FROM sys_invocation "
                     "WHERE target = 'IBox/k/hold' AND status = 'running') ORDER BY index")
    assert list(entries.entry_type) == ["Command: Input", "Command: SetState", "Command: Sleep"]
    events = rt.sql("SELECT event_type, error_message FROM sys_journal_events")
    assert events.to_dict("records") == [
        {"event_type": "TransientError", "error_message": "ValueError('first attempt')"}]
    svc = rt.sql("SELECT name, ty FROM sys_service ORDER BY name")
    assert svc.to_dict("records") == [{"name": "IBox", "ty": "virtual_object"},
                                      {"name": "IWf", "ty": "workflow"}]


def test_sql_without_duckdb_says_how_to_install_it(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_duckdb(name, *args, **kwargs):
        if name == "duckdb":
            raise ImportError("no duckdb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_duckdb)
    with pytest.raises(ImportError, match=r"pip install 'restate-playground\[sql\]'"):
        pg.Runtime().sql("SELECT 1")


async def test_sql_on_a_runtime_with_no_invocations_returns_empty_tables() -> None:
    rt = pg.Runtime(box)
    assert rt.sql("SELECT count(*) AS n FROM sys_invocation").n.iloc[0] == 0
    assert rt.sql("SELECT * FROM sys_journal").empty
    assert list(rt.sql("SELECT name FROM sys_service").name) == ["IBox"]


def _err(code: int, message: str, stacktrace: str = "") -> TransientError:
    return TransientError(attempt=1, after_entry=0, at_ms=0, code=code, message=message, stacktrace=stacktrace)


def test_failure_text_uses_restates_name_for_a_code_and_none_for_a_code_it_does_not_name() -> None:
    assert failures_view.failure_text(_err(409, "x")) == "[409 Aborted] x"
    assert failures_view.failure_text(_err(571, "x")) == "[571 Protocol violation] x"
    assert failures_view.failure_text(_err(503, "busy")) == "[503] busy"
    assert failures_view.failure_text(_err(500, "boom", "Traceback...\n")) == "[500 Internal] boom\nTraceback...\n"


def test_failure_doc_code_tells_restates_rt_codes_apart() -> None:
    precondition = "cannot process command Command: OneWayCall (command index 3) because of a failed precondition: "
    assert failures_view.failure_doc_code(_err(500, precondition + "the service handler A/b was not found")) == "RT0018"
    assert failures_view.failure_doc_code(_err(500, precondition + "a key was provided, but ...")) == "RT0017"
    assert failures_view.failure_doc_code(_err(570, "Found a mismatch")) == "RT0016"
    assert failures_view.failure_doc_code(_err(571, "the SDK ended without an output")) == "RT0012"
    assert failures_view.failure_doc_code(_err(500, "ValueError('x')")) == "RT0007"


async def test_the_notebook_view_keeps_a_completed_invocations_last_failure_and_restates_view_drops_it() -> None:
    rt = await scenario()
    mine = rt.invocations().query("target == 'IBox/f/flaky'").iloc[0]
    assert mine.status == "completed" and mine.last_failure.startswith("[500 Internal] ValueError('first attempt')")
    assert mine.last_failure_error_code == "RT0007"
    theirs = introspect.invocations(rt, as_restate=True).query("target == 'IBox/f/flaky'").iloc[0]
    assert theirs.last_failure is None and theirs.last_failure_error_code is None


def test_sql_names_a_table_only_as_a_whole_word_in_any_case() -> None:
    assert introspect.tables_named("SELECT * FROM SYS_JOURNAL_EVENTS") == ["sys_journal_events"]
    assert introspect.tables_named('select * from "sys_journal" j join sys_invocation i on j.id = i.id') == [
        "sys_invocation", "sys_journal"]
    assert introspect.tables_named("select 1") == []


async def test_sql_builds_only_the_tables_its_query_names(monkeypatch) -> None:
    rt = await scenario()

    def never(rt: pg.Runtime) -> None:
        raise AssertionError("built a table the query does not name")

    for name in introspect.TABLES:
        if name != "sys_invocation":
            monkeypatch.setitem(introspect.TABLES, name, never)
    assert rt.sql("SELECT count(*) AS n FROM sys_invocation").n.iloc[0] == len(rt.invocations())


async def test_the_journal_table_is_every_invocations_journal_one_after_the_other() -> None:
    import pandas as pd

    rt = await scenario()
    one_by_one = pd.concat([rt.journal(inv.id).assign(id=inv.id) for inv in rt.all_invocations()],
                           ignore_index=True)
    pd.testing.assert_frame_equal(introspect.journal_table(rt), one_by_one)
    assert introspect.journal_table(rt).sleep_wakeup_at.notna().any()


async def test_tables_keep_their_column_types_times_in_utc_counts_as_integers() -> None:
    rt = await scenario()
    df = rt.invocations()
    dtypes = {c: str(t) for c, t in df.dtypes.items()}
    assert dtypes["created_at"] == "datetime64[us, UTC]" and dtypes["next_retry_at"] == "datetime64[s, UTC]"
    assert dtypes["retry_count"] == dtypes["journal_size"] == "int64"
    assert dtypes["last_failure_related_command_index"] == "Int64" and dtypes["status"] == "object"
    assert df.query("target == 'IBox/f/flaky'").retry_count.iloc[0] == 1
    assert df.invoked_by_id.isna().all() and df.invoked_by_id.iloc[0] is None  # None stays None in text columns
    journal = rt.journal(df.id.iloc[0])
    assert str(journal["index"].dtype) == "int64" and str(journal.appended_at.dtype) == "datetime64[us, UTC]"
