"""`sys_journal.entry_json`: journal commands as restate-server 1.7 writes them, for the CLI's
`invocations describe` (it shows a state key, a call's target and id, a sleep's wake-up time from them).

The shapes were read off a real server's sys_journal. Commands the CLI does not detail, and
notifications, get no JSON (the CLI then shows the entry type alone, as it does for them on Restate).
"""

from __future__ import annotations

import json
from typing import Any

from . import adapter

_ZERO_SPAN = {"span_context": {"trace_id": [0] * 16, "span_id": [0] * 8, "trace_flags": 0, "is_remote": False,
                               "trace_state": ""}, "cause": None}
_RETENTION = {"secs": 86400, "nanos": 0}


def entry_json(entry: adapter.JournalRow, services: dict[str, adapter.ServiceView]) -> str | None:
    build = _BUILDERS.get(entry.kind)
    if build is None:
        return None
    body = build(entry, services)
    return None if body is None else json.dumps({"Command": {entry.kind: body}}, separators=(",", ":"))


def _state(entry: adapter.JournalRow, _s: Any) -> dict[str, Any]:
    m = entry.msg
    out: dict[str, Any] = {"key": m.key.decode(errors="replace")}
    if entry.kind == "SetState":
        out["value"] = list(m.value.content)
    elif entry.kind == "GetEagerState":
        which = m.WhichOneof("result")
        out["result"] = {"Success": list(m.value.content)} if which == "value" else "Void"
    out["name"] = m.name
    return out


def _promise(entry: adapter.JournalRow, _s: Any) -> dict[str, Any]:
    m = entry.msg
    return {"key": m.key, "completion_id": m.result_completion_id, "name": m.name}


def _sleep(entry: adapter.JournalRow, _s: Any) -> dict[str, Any]:
    m = entry.msg
    return {"wake_up_time": entry.due_ms if entry.due_ms is not None else m.wake_up_time,
            "completion_id": m.result_completion_id, "name": m.name}


def _run(entry: adapter.JournalRow, _s: Any) -> dict[str, Any]:
    return {"completion_id": entry.msg.result_completion_id, "name": entry.msg.name}


def _input(entry: adapter.JournalRow, _s: Any) -> dict[str, Any]:
    m = entry.msg
    return {"headers": [{"name": h.key, "value": h.value} for h in m.headers], "payload": list(m.value.content),
            "name": m.name}


def _call(entry: adapter.JournalRow, services: dict[str, adapter.ServiceView]) -> dict[str, Any] | None:
    m = entry.msg
    view = services.get(m.service_name)
    if view is None or entry.invoked_id is None:
        return None
    if view.ty == "SERVICE":
        target = {"Service": {"name": m.service_name, "handler": m.handler_name, "scope": None}}
    else:
        handler = view.handler_manifest(m.handler_name) or {}
        ty = {"EXCLUSIVE": "Exclusive", "SHARED": "Shared", "WORKFLOW": "Workflow"}.get(handler.get("ty", ""),
                                                                                      "Exclusive")
        kind = "VirtualObject" if view.ty == "VIRTUAL_OBJECT" else "Workflow"
        target = {kind: {"name": m.service_name, "key": m.key, "handler": m.handler_name, "handler_ty": ty,
                         "scope": None}}
    request = {"invocation_id": entry.invoked_id, "invocation_target": target, "span_context": _ZERO_SPAN,
               "parameter": list(m.parameter), "headers": [{"name": h.key, "value": h.value} for h in m.headers],
               "idempotency_key": m.idempotency_key or None, "completion_retention_duration": _RETENTION,
               "journal_retention_duration": _RETENTION}
    if entry.kind == "Call":
        return {"request": request, "invocation_id_completion_id": m.invocation_id_notification_idx,
                "result_completion_id": m.result_completion_id, "name": m.name}
    return {"request": request, "invoke_time": entry.due_ms or 0,
            "invocation_id_completion_id": m.invocation_id_notification_idx, "name": m.name}


_BUILDERS = {"Input": _input, "GetEagerState": _state, "GetLazyState": _state, "SetState": _state,
             "ClearState": _state, "GetPromise": _promise, "PeekPromise": _promise, "Sleep": _sleep, "Run": _run,
             "Call": _call, "OneWayCall": _call}
