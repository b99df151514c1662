"""pandas views of the runtime, shaped like Restate's SQL introspection tables (same column names where they apply)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from .protocol import messages
from .runtime.clock import to_datetime
from .runtime.model import Failure, Invocation, JournalEntry

if TYPE_CHECKING:
    from .runtime.core import Runtime

_TY = {"service": "service", "virtual_object": "virtual_object", "workflow": "workflow"}


def _ts(ms: int | None) -> Any:
    return pd.Timestamp(to_datetime(ms)) if ms is not None else pd.NaT


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A DataFrame that keeps None as None in text columns (pandas 3 would turn it into NaN) and typed times."""
    df = pd.DataFrame(rows, columns=columns, dtype=object)
    for col in columns:
        if col.endswith("_at"):
            df[col] = pd.to_datetime(df[col], utc=True)
        elif col in ("index", "retry_count", "journal_size"):
            df[col] = df[col].astype("int64")
    return df


def invocations(rt: "Runtime") -> pd.DataFrame:
    """One row per invocation, like `sys_invocation`."""
    rows = []
    for inv in rt._all_invocations():
        failure = inv.result if isinstance(inv.result, Failure) else None
        rows.append({
            "id": inv.id,
            "target": str(inv.target),
            "target_service_name": inv.target.service,
            "target_service_key": inv.target.key,
            "target_handler_name": inv.target.handler,
            "target_service_ty": inv.service.kind,
            "status": inv.status,
            "invoked_by": inv.invoked_by,
            "invoked_by_id": inv.invoked_by_id,
            "invoked_by_target": inv.invoked_by_target,
            "idempotency_key": inv.idempotency_key,
            "created_at": _ts(inv.created_at),
            "scheduled_start_at": _ts(inv.scheduled_at),
            "inboxed_at": _ts(inv.inboxed_at),
            "running_at": _ts(inv.running_at),
            "completed_at": _ts(inv.completed_at),
            "retry_count": max(0, inv.attempts - 1),
            "next_retry_at": _ts(inv.next_retry_at),
            "last_failure": inv.last_failure.message if inv.last_failure else None,
            "last_failure_error_code": inv.last_failure.code if inv.last_failure else None,
            "journal_size": len(inv.journal),
            "completion_result": ("failure" if failure else "success") if inv.completed else None,
            "completion_failure": str(failure) if failure else None,
        })
    cols = ["id", "target", "target_service_name", "target_service_key", "target_handler_name", "target_service_ty",
            "status", "invoked_by", "invoked_by_id", "invoked_by_target", "idempotency_key", "created_at",
            "scheduled_start_at", "inboxed_at", "running_at", "completed_at", "retry_count", "next_retry_at",
            "last_failure", "last_failure_error_code", "journal_size", "completion_result", "completion_failure"]
    return _frame(rows, cols)


def decode_payload(data: bytes) -> Any:
    """JSON when it parses, text when it decodes, else the raw bytes."""
    if data == b"":
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data


def decode_state(state: dict[str, bytes]) -> dict[str, Any]:
    return {k: decode_payload(v) for k, v in sorted(state.items())}


def _detail(rt: "Runtime", inv: Invocation, e: JournalEntry) -> dict[str, Any]:
    m = e.msg
    name = messages.NAMES_BY_ID.get(e.type_id, "")
    out: dict[str, Any] = {"invoked_id": None, "invoked_target": None, "sleep_wakeup_at": None,
                           "promise_name": None, "payload": None}
    if name in ("Call", "OneWayCall"):
        out["invoked_target"] = f"{m.service_name}/{m.key + '/' if m.key else ''}{m.handler_name}"
        out["invoked_id"] = rt._call_target_id(inv, m)
        out["payload"] = decode_payload(m.parameter)
        if name == "OneWayCall" and m.invoke_time:
            out["sleep_wakeup_at"] = _ts(e.due_ms)
    elif name == "Sleep":
        out["sleep_wakeup_at"] = _ts(e.due_ms)
    elif name in ("GetPromise", "PeekPromise", "CompletePromise"):
        out["promise_name"] = m.key
    if name in ("SetState", "GetEagerState", "GetLazyState", "ClearState"):
        out["name"] = m.key.decode()
    payload = _payload(m)
    if payload is not None:
        out["payload"] = payload
    if name == "CallInvocationIdCompletion":
        out["payload"] = m.invocation_id
    return out


def describe_entry(e: JournalEntry) -> str:
    """One journal entry in words, e.g. `Command: SetState 'a' = 1`."""
    m = e.msg
    text = e.entry_type
    name = m.key.decode() if isinstance(getattr(m, "key", None), bytes) else e.name
    if messages.NAMES_BY_ID.get(e.type_id) in ("Call", "OneWayCall"):
        name = f"{m.service_name}/{m.key + '/' if m.key else ''}{m.handler_name}"
    if name:
        text += f" {name!r}"
    payload = _payload(m)
    if payload is not None:
        text += f" = {payload!r}"
    return text


def _payload(m: Any) -> Any:
    for field in ("value", "failure", "completion_value", "completion_failure", "parameter"):
        if field in m.DESCRIPTOR.fields_by_name and (field == "parameter" or m.HasField(field)):
            v = getattr(m, field)
            if hasattr(v, "content"):
                return decode_payload(v.content)
            if isinstance(v, bytes):
                return decode_payload(v)
            if hasattr(v, "code"):
                return f"[{v.code}] {v.message}"
    return None


def journal(rt: "Runtime", inv: Invocation) -> pd.DataFrame:
    """One row per journal entry, like `sys_journal`, with the payload decoded."""
    rows = []
    for i, e in enumerate(inv.journal):
        row = {"index": i, "entry_type": e.entry_type, "name": e.name}
        detail = _detail(rt, inv, e)
        row["name"] = detail.pop("name", row["name"])
        row.update(detail)
        row["appended_at"] = _ts(e.appended_at)
        rows.append(row)
    cols = ["index", "entry_type", "name", "invoked_id", "invoked_target", "sleep_wakeup_at", "promise_name",
            "payload", "appended_at"]
    return _frame(rows, cols)
