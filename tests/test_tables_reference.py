"""The column-by-column table builders of introspect against a straightforward row-by-row reference, on a
runtime holding completed, failed, retrying and sleeping invocations of services and objects."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import timedelta

import pandas as pd
import restate

import playground as pg
from playground import failures_view, introspect
from playground.runtime.clock import to_datetime
from playground.runtime.journal import decode_payload

ref_svc = restate.Service("RefSvc")
ref_obj = restate.VirtualObject("RefObj")


@ref_svc.handler()
async def echo(ctx: restate.Context, value: object) -> object:
    return value


@ref_svc.handler()
async def reject(ctx: restate.Context, n: int) -> int:
    raise restate.TerminalError(f"no {n}", 409)


@ref_svc.handler()
async def keeps_failing(ctx: restate.Context) -> None:
    raise ValueError("boom")


@ref_obj.handler()
async def busy(ctx: restate.ObjectContext, n: int) -> str:
    ctx.set("n", n)
    ctx.set("text", "not json \xff".encode("latin-1").decode("latin-1"))
    await ctx.run_typed("step", lambda: n + 1)
    await ctx.service_call(echo, arg={"nested": [n, None]})
    ctx.service_send(echo, arg=n, send_delay=timedelta(minutes=5))
    await ctx.sleep(timedelta(seconds=n))
    return str(await ctx.get("n"))


def _ts(ms: int | None) -> object:
    return pd.Timestamp(to_datetime(ms)) if ms is not None else pd.NaT


def reference_invocations(rt: pg.Runtime, as_restate: bool) -> pd.DataFrame:
    """sys_invocation built one dict per row, the plain way."""
    rows = []
    for inv in rt.all_invocations():
        err = inv.last_failure if not as_restate or failures_view.failure_shown(inv) else None
        failure = inv.completion_failure()
        rows.append({
            "id": inv.id, "target": str(inv.target), "target_service_name": inv.target.service,
            "target_service_key": inv.target.key, "target_handler_name": inv.target.handler,
            "target_service_ty": inv.service.kind, "status": inv.status, "invoked_by": inv.invoked_by,
            "invoked_by_id": inv.invoked_by_id, "invoked_by_target": inv.invoked_by_target,
            "idempotency_key": inv.idempotency_key, "created_at": _ts(inv.created_at),
            "scheduled_start_at": _ts(inv.scheduled_at), "inboxed_at": _ts(inv.inboxed_at),
            "running_at": _ts(inv.running_at), "completed_at": _ts(inv.completed_at),
            "retry_count": max(inv.attempts - 1, 0), "next_retry_at": _ts(inv.next_retry_at),
            **failures_view.failure_columns(err),
            "journal_size": len(inv.journal),
            "journal_commands_size": sum(pg.protocol.messages.is_command(e.type_id) for e in inv.journal),
            "pinned_deployment_id": f"dp_{inv.revision}",
            "completion_result": ("failure" if failure else "success") if inv.completed else None,
            "completion_failure": failure})
    df = pd.DataFrame(rows, dtype=object)
    for col in df.columns:
        if col.endswith("_at"):
            df[col] = pd.to_datetime(df[col], utc=True)
    df[["retry_count", "journal_size"]] = df[["retry_count", "journal_size"]].astype("int64")
    df["last_failure_related_command_index"] = df["last_failure_related_command_index"].astype("Int64")
    return df


def reference_journal(rt: pg.Runtime, inv_id: str) -> pd.DataFrame:
    """sys_journal of one invocation, one dict per entry."""
    inv = rt.invocation(inv_id)
    rows = [{"index": i, "entry_type": e.entry_type, "name": e.name,
             **introspect.entry_detail(rt, inv, e), "appended_at": _ts(e.appended_at)}
            for i, e in enumerate(inv.journal)]
    df = pd.DataFrame(rows, columns=introspect.JOURNAL_COLUMNS, dtype=object)
    df["index"] = df["index"].astype("int64")
    df["appended_at"] = pd.to_datetime(df["appended_at"], utc=True)
    df["sleep_wakeup_at"] = pd.to_datetime(df["sleep_wakeup_at"], utc=True)
    return df


async def test_the_column_builders_give_what_a_row_by_row_build_gives() -> None:
    rt = pg.Runtime(ref_svc, ref_obj)
    for value in (1, "text", None, [1, {"a": 2}], 2.5):
        await rt.service_call(echo, arg=value)
    for n in range(3):
        with contextlib.suppress(restate.TerminalError):
            await rt.service_call(reject, arg=n)
        await rt.object_call(busy, key=f"k{n}", arg=n)
    await rt.service_send(keeps_failing)
    await rt.advance(timedelta(seconds=2))  # a few failed attempts, still retrying
    await rt.object_send(busy, key="sleeper", arg=3600)
    await rt.advance(timedelta(seconds=1))
    for as_restate in (False, True):
        got, want = introspect.invocations(rt, as_restate=as_restate), reference_invocations(rt, as_restate)
        assert set(got.status) >= {"completed", "backing-off", "scheduled"}, set(got.status)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    for inv_id in rt.invocations().id:
        pd.testing.assert_frame_equal(rt.journal(inv_id), reference_journal(rt, inv_id), check_exact=True)



def test_decode_payload_gives_what_json_loads_gives_on_the_fast_path_and_off_it() -> None:
    for data in (b"1", b"2.5", b'"a"', b'[1, {"a": null}]', b"true", b" 1", b"1 \n", b"\xef\xbb\xbf[2]",
                 b'"\\ud800"'):
        assert decode_payload(data) == json.loads(data), data
    assert math.isnan(decode_payload(b"NaN"))
    assert decode_payload(b"1x") == "1x" and decode_payload(b"[1") == "[1" and decode_payload(b"{}{}") == "{}{}"
    assert decode_payload(b"\xff\xfe") == b"\xff\xfe" and decode_payload(b"") is None
