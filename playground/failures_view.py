"""How Restate shows a failed attempt: the `last_failure` text and its columns in sys_invocation, the
documentation codes (RT0007, RT0016, ...), whether the failure is still shown, and the event_json of
sys_journal_events; the wording the tables of introspect (and so of the HTTP door's /query) use."""

from __future__ import annotations

import json
import re
from typing import Any

from .protocol import messages
from .runtime.model import Invocation, TransientError

_RUN_COMPLETION = messages.TYPE_IDS["RunCompletion"]

# Restate's names for error codes (its InvocationErrorCode table); a code it does not name shows bare, "[503]"
CODE_NAMES = {400: "Bad request", 404: "Not found", 409: "Aborted", 410: "Gone", 415: "Unsupported media type",
              470: "Not ready", 500: "Internal", 570: "Journal mismatch", 571: "Protocol violation",
              572: "Awaiting two async results", 573: "Unsupported feature"}
# the command types sys_invocation names in last_failure_related_command_type (Restate maps the SDK's command
# type onto its older entry types, and shows none for the others, e.g. Sleep)
_RELATED_TYPES = {"Run": "Run", "Call": "Call", "OneWayCall": "OneWayCall", "CompleteAwakeable": "CompleteAwakeable",
                  "SetState": "SetState", "GetLazyState": "GetState", "GetEagerState": "GetState",
                  "GetLazyStateKeys": "GetStateKeys", "GetEagerStateKeys": "GetStateKeys"}
_PRECONDITION = re.compile(r"cannot process command .+ \(command index \d+\) because of a failed precondition: (.*)",
                           re.S)


def failure_text(err: TransientError) -> str:
    """A failed attempt as sys_invocation.last_failure shows it: `[500 Internal] message`, then the stacktrace."""
    name = CODE_NAMES.get(err.code)
    text = f"[{err.code} {name}] {err.message}" if name else f"[{err.code}] {err.message}"
    return f"{text}\n{err.stacktrace}" if err.stacktrace else text


def failure_doc_code(err: TransientError) -> str:
    """Restate's documentation code for a failed attempt (last_failure_error_code): RT0018 for a call to a
    handler that does not exist, RT0017 for another failed precondition of a call (a key sent to a Service),
    RT0016 for a journal mismatch, RT0012 for a protocol violation, RT0007 for any other error of the SDK."""
    m = _PRECONDITION.fullmatch(err.message)
    if m:
        return "RT0018" if m.group(1).startswith("the service handler ") else "RT0017"
    return {570: "RT0016", 571: "RT0012"}.get(err.code, "RT0007")


def failure_shown(inv: Invocation) -> bool:
    """Whether Restate's sys_invocation still shows the last failure: its invoker keeps it only while the
    invocation runs or backs off, and forgets it once a later attempt records a new command or run result."""
    err = inv.last_failure
    if err is None or inv.status not in ("running", "backing-off"):
        return False
    return not any(messages.is_command(e.type_id) or e.type_id == _RUN_COMPLETION
                   for e in inv.journal[err.after_entry + 1:])


def failure_columns(err: TransientError | None) -> dict[str, Any]:
    kind = _RELATED_TYPES.get(err.related_type or "") if err else None
    return {"last_failure": failure_text(err) if err else None,
            "last_failure_error_code": failure_doc_code(err) if err else None,
            "last_failure_related_command_index": err.related_index if err else None,
            "last_failure_related_command_name": err.related_name if err else None,
            "last_failure_related_command_type": kind}


def failure_column_lists(errs: list[TransientError | None]) -> dict[str, list[Any]]:
    """The last_failure columns (all None when no invocation shows a failure, the usual case)."""
    if not any(e is not None for e in errs):
        return dict.fromkeys(failure_columns(None), [None] * len(errs))
    return {"last_failure": [failure_text(e) if e is not None else None for e in errs],
            "last_failure_error_code": [failure_doc_code(e) if e is not None else None for e in errs],
            "last_failure_related_command_index": [e.related_index if e is not None else None for e in errs],
            "last_failure_related_command_name": [e.related_name if e is not None else None for e in errs],
            "last_failure_related_command_type": [_RELATED_TYPES.get(e.related_type or "") if e is not None
                                                  else None for e in errs]}


def event_json(err: TransientError) -> str:
    """A TransientError event as sys_journal_events.event_json holds it on restate-server 1.7.12."""
    doc: dict[str, Any] = {"ty": "TransientError", "error_code": err.code, "error_message": err.message}
    if err.stacktrace:
        doc["error_stacktrace"] = err.stacktrace
    doc["restate_doc_error_code"] = failure_doc_code(err)
    return json.dumps(doc, separators=(",", ":"))
