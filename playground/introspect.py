"""pandas views of the runtime, shaped like Restate's SQL introspection tables (same table and column names
where they apply), and `sql()`, which runs the SQL a user would give `restate sql` over them."""

from __future__ import annotations

import operator
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .failures_view import event_json, failure_column_lists, failure_shown
from .protocol import messages
from .runtime import readmodel
from .runtime.clock import MAX_MS, MIN_MS, to_datetime
from .runtime.journal import call_target, call_target_id, decode_payload, payload_of
from .runtime.model import Failure, Invocation, JournalEntry, journal_heads

if TYPE_CHECKING:
    from .runtime.core import Engine as Runtime

_CALL_ID = messages.TYPE_IDS["CallInvocationIdCompletion"]
_TY = {"service": "service", "virtual_object": "virtual_object", "workflow": "workflow"}


def _ts(ms: int | None) -> Any:
    return pd.Timestamp(to_datetime(ms)) if ms is not None else pd.NaT


def _times(ms: Sequence[int | None]) -> pd.Series:
    """A column of virtual ms (None: missing) as the UTC times `_ts` gives one by one, clamped to the clock's
    range like it, built in one go: unit us, or s when every value is missing (as pandas infers from NaT)."""
    values = np.array(ms, dtype=np.float64)  # None -> NaN; every ms in the clock's range is exact in a float
    missing = np.isnan(values)
    us = np.clip(np.where(missing, 0, values), MIN_MS, MAX_MS).astype(np.int64) * 1000
    stamps = np.where(missing, np.datetime64("NaT", "us"), us.view("M8[us]"))
    if missing.all():
        stamps = stamps.astype("M8[s]")
    return pd.Series(stamps, copy=False).dt.tz_localize("UTC")


def _columns(columns: dict[str, Any], times: Sequence[str] = (), ints: Sequence[str] = (),
             nullable_ints: Sequence[str] = (), stamps: Sequence[str] = ()) -> pd.DataFrame:
    """A DataFrame built column by column, typed as `_frame` types it from rows: text and other values stay
    objects (None stays None), `times` hold virtual ms and become UTC times, `stamps` hold `_ts` values (or
    None) and become UTC times too, `ints` int64, `nullable_ints` Int64."""
    typed: dict[str, Any] = {c: _times(columns[c]) for c in times}
    typed |= {c: pd.to_datetime(pd.Series(columns[c], dtype=object), utc=True) for c in stamps}
    typed |= {c: np.array(columns[c], dtype=np.int64) for c in ints}
    typed |= {c: pd.array(columns[c], dtype="Int64") for c in nullable_ints}
    # one frame from the columns in their order, not copied again (each assignment or reordering would copy)
    return pd.DataFrame({c: typed[c] if c in typed else pd.Series(v, dtype=object) for c, v in columns.items()},
                        copy=False)


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A DataFrame that keeps None as None in text columns (pandas 3 would turn it into NaN) and typed times."""
    df = pd.DataFrame(rows, columns=columns, dtype=object)
    for col in columns:
        if col.endswith("_at"):
            df[col] = pd.to_datetime(df[col], utc=True)
        elif col in ("index", "retry_count", "journal_size"):
            df[col] = df[col].astype("int64")
        elif col == "last_failure_related_command_index":
            df[col] = df[col].astype("Int64")
    return df


def invocations(rt: Runtime, *, as_restate: bool = False) -> pd.DataFrame:
    """One row per invocation, like `sys_invocation`. The last failure stays on the row after the invocation
    completes, pauses or moves on, for a notebook to look at; `as_restate` shows it only while Restate does.
    Built column by column, each field read by one `map` (a dict or tuple per row would cost several times as
    much at 100,000 rows, the garbage collector walking every kept record as they pile up), the journals'
    sizes and commands counted on arrays."""
    invs = list(rt.all_invocations())
    targets = _fields(invs, "target")
    services, keys, handlers = (_fields(targets, f) for f in ("service", "key", "handler"))
    errs = _fields(invs, "last_failure") if not as_restate else [
        inv.last_failure if inv.last_failure is not None and failure_shown(inv) else None for inv in invs]
    failures = [r if isinstance(r, Failure) else None for r in _fields(invs, "result")]
    sizes, commands = _journal_counts(invs)
    cols: dict[str, Any] = {
        "id": _fields(invs, "id"),
        "target": [f"{s}/{k}/{h}" if k is not None else f"{s}/{h}"
                   for s, k, h in zip(services, keys, handlers, strict=True)],
        "target_service_name": services, "target_service_key": keys, "target_handler_name": handlers,
        "target_service_ty": _service_kinds(_fields(invs, "service")),
        **{c: _fields(invs, f) for c, f in _SAME_FIELDS.items()},
        "retry_count": np.maximum(np.array(_fields(invs, "attempts"), dtype=np.int64) - 1, 0),
        "next_retry_at": _fields(invs, "next_retry_at"),
        **failure_column_lists(errs),
        "journal_size": sizes, "journal_commands_size": commands,
        "pinned_deployment_id": [f"dp_{r}" for r in _fields(invs, "revision")],
        "completion_result": [("failure" if f is not None else "success") if c else None
                              for f, c in zip(failures, _fields(invs, "completed"), strict=True)],
        "completion_failure": [str(f) if f is not None else None for f in failures],
    }
    return _columns(cols, times=[c for c in cols if c.endswith("_at")], ints=["retry_count", "journal_size"],
                    nullable_ints=["last_failure_related_command_index"])


# sys_invocation's columns that show an Invocation field as it is (column: field), in the table's order
_SAME_FIELDS = {"status": "status", "invoked_by": "invoked_by", "invoked_by_id": "invoked_by_id",
                "invoked_by_target": "invoked_by_target", "idempotency_key": "idempotency_key",
                "created_at": "created_at", "scheduled_start_at": "scheduled_at", "inboxed_at": "inboxed_at",
                "running_at": "running_at", "completed_at": "completed_at"}


def _fields(objs: Sequence[Any], name: str) -> list[Any]:
    """One attribute of each object, read in one `map` (faster than a comprehension)."""
    return list(map(operator.attrgetter(name), objs))


def _service_kinds(services: Sequence[Any]) -> list[str]:
    """Each invocation's service kind, asked once per service rather than once per invocation."""
    kinds = {id(svc): svc.kind for svc in {id(svc): svc for svc in services}.values()}
    return [kinds[id(svc)] for svc in services]


def _journal_counts(invs: list[Invocation]) -> tuple[np.ndarray, np.ndarray]:
    """Each journal's size (int64) and how many commands it holds (messages.is_command on arrays; Python
    ints, as the column always held), counted over all journals at once."""
    sizes_bytes, ids_bytes = journal_heads(invs)
    sizes = np.frombuffer(sizes_bytes, dtype="<u4").astype(np.int64)
    ids = np.frombuffer(ids_bytes, dtype="<u2")
    commands = np.concatenate([[0], np.cumsum(((ids >= 0x0400) & (ids <= 0x7FFF)) | (ids >= 0xFC00))])
    ends = np.cumsum(sizes)
    return sizes, (commands[ends] - commands[ends - sizes]).astype(object)


def state_table(rt: Runtime) -> pd.DataFrame:
    """Every object's and workflow's K/V state, like Restate's `state` table."""
    rows = []
    for (service, key), entries in readmodel.states(rt):
        for name, value in sorted(entries.items()):
            try:
                utf8 = value.decode()
            except UnicodeDecodeError:
                utf8 = None
            rows.append({"service_name": service, "service_key": key, "key": name, "value_utf8": utf8,
                         "value": value, "value_length": len(value)})
    return _frame(rows, ["service_name", "service_key", "key", "value_utf8", "value", "value_length"])


def inbox(rt: Runtime) -> pd.DataFrame:
    """Invocations queued for a key's lock, in order, like `sys_inbox`."""
    rows = []
    for (service, key), waiting in readmodel.inboxes(rt):
        for seq, inv in enumerate(waiting):
            rows.append({"service_name": service, "service_key": key, "id": inv.id, "sequence_number": seq,
                         "created_at": _ts(inv.inboxed_at)})
    return _frame(rows, ["service_name", "service_key", "id", "sequence_number", "created_at"])


def keyed_service_status(rt: Runtime) -> pd.DataFrame:
    """The holder of each locked key, like `sys_keyed_service_status`."""
    rows = [{"service_name": s, "service_key": k, "invocation_id": inv_id}
            for (s, k), inv_id in readmodel.lock_holders(rt)]
    return _frame(rows, ["service_name", "service_key", "invocation_id"])


def idempotency(rt: Runtime) -> pd.DataFrame:
    """Idempotency keys still retained, like `sys_idempotency`."""
    rows = [{"service_name": s, "service_key": k or None, "service_handler": h, "idempotency_key": ik,
             "invocation_id": inv_id} for (s, k, h, ik), inv_id in readmodel.idempotency_keys(rt)]
    return _frame(rows, ["service_name", "service_key", "service_handler", "idempotency_key", "invocation_id"])


def promises(rt: Runtime) -> pd.DataFrame:
    """Workflow durable promises, like `sys_promise` (completed ones, and those someone awaits)."""
    rows = []
    for (service, key), name, value in readmodel.completed_promises(rt):
        ok = not isinstance(value, Failure)
        text = value.decode(errors="replace") if not isinstance(value, Failure) else None
        rows.append({"service_name": service, "service_key": key, "key": name, "completed": True,
                     "completion_success_value": value if ok else None,
                     "completion_success_value_utf8": text,
                     "completion_failure": None if ok else str(value)})
    for (service, key), name in readmodel.awaited_promises(rt):
        rows.append({"service_name": service, "service_key": key, "key": name, "completed": False,
                     "completion_success_value": None, "completion_success_value_utf8": None,
                     "completion_failure": None})
    return _frame(rows, ["service_name", "service_key", "key", "completed", "completion_success_value",
                         "completion_success_value_utf8", "completion_failure"])


def services(rt: Runtime) -> pd.DataFrame:
    """Registered services, like `sys_service`."""
    rows = [{"name": name, "revision": reg.revision,
             "public": not all(h.ingress_private for h in reg.info.handlers.values()),
             "ty": reg.info.kind, "deployment_id": f"dp_{reg.revision}"}
            for name, reg in readmodel.services(rt).items()]
    return _frame(rows, ["name", "revision", "public", "ty", "deployment_id"])


def journal_table(rt: Runtime) -> pd.DataFrame:
    """Every invocation's journal in one table, like `sys_journal` (with `id` naming the invocation), built as
    one set of columns rather than a frame per invocation."""
    invs = list(rt.all_invocations())
    if not invs:
        return _frame([], [*JOURNAL_COLUMNS, "id"])
    cols: dict[str, list[Any]] = {c: [] for c in [*JOURNAL_COLUMNS, "id"]}
    for inv in invs:
        for c, values in _journal_columns(rt, inv).items():
            cols[c].extend(values)
        cols["id"].extend([inv.id] * len(inv.journal))
    df = _columns(cols, times=["appended_at"], ints=["index"], stamps=["sleep_wakeup_at"])
    df["id"] = df["id"].astype("str")  # pandas' text dtype, as `assign(id=...)` on each journal gave it
    return df


def journal_events(rt: Runtime) -> pd.DataFrame:
    """Failed attempts, like `sys_journal_events` (event_type TransientError)."""
    rows = []
    for inv in rt.all_invocations():
        for err in inv.errors:
            rows.append({"id": inv.id, "after_journal_entry_index": err.after_entry, "appended_at": _ts(err.at_ms),
                         "event_type": "TransientError", "error_code": err.code, "error_message": err.message,
                         "related_command": err.related_command,
                         "event_json": event_json(err)})
    return _frame(rows, ["id", "after_journal_entry_index", "appended_at", "event_type", "error_code",
                         "error_message", "related_command", "event_json"])


TABLES = {
    "sys_invocation": invocations, "sys_journal": journal_table, "state": state_table, "sys_inbox": inbox,
    "sys_keyed_service_status": keyed_service_status, "sys_idempotency": idempotency, "sys_promise": promises,
    "sys_service": services, "sys_journal_events": journal_events,
}


def sql(rt: Runtime, query: str) -> pd.DataFrame:
    """Run SQL over the tables above, as `restate sql` runs it over Restate's. Needs DuckDB (an optional extra)."""
    try:
        import duckdb
    except ImportError:
        raise ImportError("rt.sql needs DuckDB: pip install 'restate-playground[sql]' (or pip install duckdb); "
                          "the same tables are available without it as DataFrames, e.g. rt.invocations()") from None
    con = duckdb.connect()
    try:
        for name in tables_named(query):
            df = TABLES[name](rt)
            for col in df.columns:  # bytes columns: DuckDB takes them as BLOB only from a typed column
                if df[col].dtype == object and _holds_bytes(df[col]):
                    df[col] = df[col].map(lambda v: bytes(v) if isinstance(v, (bytes, bytearray)) else None)
            con.register(name, df)
        with warnings.catch_warnings():  # DuckDB's own DataFrame conversion uses an API pandas 3.1 deprecates
            warnings.filterwarnings("ignore", message="The inplace keyword", category=DeprecationWarning)
            return con.execute(query).df()
    finally:
        con.close()


def tables_named(query: str) -> list[str]:
    """The tables of TABLES a query names (as a whole word, in any case): only those are built for it."""
    return [name for name in TABLES if re.search(rf"\b{name}\b", query, re.IGNORECASE)]


def _holds_bytes(column: pd.Series) -> bool:
    """Whether any value is bytes; pandas' inference runs in C and rules out most columns without a look."""
    if pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty", "integer", "boolean", "floating"):
        return False
    return bool(column.map(lambda v: isinstance(v, (bytes, bytearray))).any())


def decode_state(state: dict[str, bytes]) -> dict[str, Any]:
    return {k: decode_payload(v) for k, v in sorted(state.items())}


def call_ids(inv: Invocation) -> dict[int, str]:
    """The ids of the invocations `inv`'s calls and sends created, by the completion id of their
    CallInvocationId notification (the first notification of each, as journal.call_target_id finds it)."""
    out: dict[int, str] = {}
    for e in inv.journal:
        if e.type_id == _CALL_ID:
            out.setdefault(e.msg.completion_id, e.msg.invocation_id)
    return out


def entry_detail(rt: Runtime, inv: Invocation, e: JournalEntry, calls: dict[int, str] | None = None) -> dict[str, Any]:
    """What a journal row shows of `e` beyond its type; `calls` (from call_ids) saves a scan of the journal per
    call when every entry of a journal is shown. "name" is there only when it differs from `e.name`."""
    name, invoked_id, invoked_target, wakeup, promise, payload = _entry_values(inv, e, calls)
    out: dict[str, Any] = {"invoked_id": invoked_id, "invoked_target": invoked_target,
                           "sleep_wakeup_at": _ts(wakeup) if wakeup is not _NO_TIME else None,
                           "promise_name": promise, "payload": payload}
    if name is not None:
        out["name"] = name
    return out


_NO_TIME = object()  # no sleep_wakeup_at (None itself is a due time not known, shown as NaT)
_CALLS = {messages.TYPE_IDS["Call"], messages.TYPE_IDS["OneWayCall"]}
_ONE_WAY, _SLEEP = messages.TYPE_IDS["OneWayCall"], messages.TYPE_IDS["Sleep"]
_PROMISES = {messages.TYPE_IDS[n] for n in ("GetPromise", "PeekPromise", "CompletePromise")}
_STATE_NAMED = {messages.TYPE_IDS[n] for n in ("SetState", "GetEagerState", "GetLazyState", "ClearState")}


def _entry_values(inv: Invocation, e: JournalEntry, calls: dict[int, str] | None) -> tuple[Any, ...]:
    """(name shown instead of e.name or None, invoked id, invoked target, wake-up ms or _NO_TIME, promise
    name, payload) of one journal entry."""
    m, t = e.msg, e.type_id
    name = invoked_id = invoked_target = promise = None
    wakeup: Any = _NO_TIME
    if t in _CALLS:
        invoked_target = str(call_target(m))
        invoked_id = calls.get(m.invocation_id_notification_idx) if calls is not None else call_target_id(inv, m)
        if t == _ONE_WAY and m.invoke_time:
            wakeup = e.due_ms
    elif t == _SLEEP:
        wakeup = e.due_ms
    elif t in _PROMISES:
        promise = m.key
    if t in _STATE_NAMED:
        name = m.key.decode()
    payload = m.invocation_id if t == _CALL_ID else payload_of(m)  # a call's payload: its parameter
    return name, invoked_id, invoked_target, wakeup, promise, payload


JOURNAL_COLUMNS = ["index", "entry_type", "name", "invoked_id", "invoked_target", "sleep_wakeup_at",
                   "promise_name", "payload", "appended_at"]


def journal(rt: Runtime, inv: Invocation) -> pd.DataFrame:
    """One row per journal entry, like `sys_journal`, with the payload decoded. Built column by column, with
    the call ids looked up once for the whole journal."""
    return _columns(_journal_columns(rt, inv), times=["appended_at"], ints=["index"], stamps=["sleep_wakeup_at"])


def _journal_columns(rt: Runtime, inv: Invocation) -> dict[str, list[Any]]:
    entries = inv.journal
    calls = call_ids(inv)
    values = [_entry_values(inv, e, calls) for e in entries]
    names, invoked_ids, targets, wakeups, promises, payloads = (list(c) for c in zip(*values, strict=True)) \
        if values else ([], [], [], [], [], [])
    return {
        "index": list(range(len(entries))),
        "entry_type": [_entry_type(e.type_id) for e in entries],
        "name": [n if n is not None else e.name for n, e in zip(names, entries, strict=True)],
        "invoked_id": invoked_ids, "invoked_target": targets,
        "sleep_wakeup_at": [None if w is _NO_TIME else _ts(w) for w in wakeups],
        "promise_name": promises, "payload": payloads,
        "appended_at": [e.appended_at for e in entries],
    }


_ENTRY_TYPES = {type_id: messages.entry_type(type_id) for type_id in messages.NAMES_BY_ID}


def _entry_type(type_id: int) -> str:
    return _ENTRY_TYPES.get(type_id) or messages.entry_type(type_id)
