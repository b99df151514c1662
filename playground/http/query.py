"""`POST /query`: the SQL the `restate` CLI and users send, run by DuckDB over Restate-shaped tables.

The tables are the read model's (`playground.introspect`), plus the columns and tables the CLI reads that
the notebook views leave out. DuckDB runs on a fresh in-memory database per query with file access,
extension loading and configuration changes disabled, so a query cannot touch the machine. DataFusion
syntax DuckDB lacks is rewritten first (see `translate`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import introspect
from . import adapter, journal_json

if TYPE_CHECKING:
    from ..runtime.core import Engine as Runtime

SDK_VERSION = "restate-sdk-python/1.3.0"


class QueryError(Exception):
    """The query could not run; the message is DuckDB's, shaped like Restate's."""


# ------------------------------------------------------------------------------------------ translation
_FIRST_LAST = re.compile(r"\b(FIRST|LAST)_VALUE\s*\(", re.IGNORECASE)
_ARROW_CAST = re.compile(r"\barrow_cast\s*\(\s*([^,()]+?)\s*,\s*'(\w+)'\s*\)", re.IGNORECASE)
_ARROW_TYPES = {"int64": "BIGINT", "int32": "INTEGER", "utf8": "VARCHAR", "largeutf8": "VARCHAR",
                "float64": "DOUBLE", "boolean": "BOOLEAN"}


def translate(sql: str) -> str:
    """DataFusion-only syntax the CLI uses, in DuckDB's words: `FIRST_VALUE(x ORDER BY y)` as an aggregate
    is DuckDB's `first(x ORDER BY y)`; `arrow_cast(x, 'Int64')` is a CAST."""
    out = _rewrite_first_last(sql)
    return _ARROW_CAST.sub(lambda m: f"CAST({m.group(1)} AS {_ARROW_TYPES.get(m.group(2).lower(), m.group(2))})",
                           out)


def _rewrite_first_last(sql: str) -> str:
    """FIRST_VALUE(...)/LAST_VALUE(...) not followed by OVER (aggregate use) become first(...)/last(...)."""
    pieces, pos = [], 0
    for m in _FIRST_LAST.finditer(sql):
        depth, end = 1, m.end()
        while end < len(sql) and depth:
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            end += 1
        if re.match(r"\s*OVER\b", sql[end:], re.IGNORECASE):
            continue
        pieces.append(sql[pos:m.start()] + m.group(1).lower() + "(")
        pos = m.end()
    pieces.append(sql[pos:])
    return "".join(pieces)


# ------------------------------------------------------------------------------------------ tables
def _deployment(value: Any) -> Any:
    """`dp_<revision>` in the runtime's tables, in Restate's id format here (see adapter.deployment_id)."""
    return adapter.deployment_id(int(value[3:])) if isinstance(value, str) and value[3:].isdigit() else value


# sys_invocation_status keeps Restate's raw statuses (sys_invocation derives the friendly ones from them)
_RAW_STATUS = {"pending": "inboxed", "running": "invoked", "backing-off": "invoked"}


def invocation_table(rt: Runtime) -> pd.DataFrame:
    """sys_invocation with the columns the CLI reads besides the notebook's."""
    df = introspect.invocations(rt, as_restate=True)
    started = df["running_at"].notna()
    times = df[["created_at", "scheduled_start_at", "inboxed_at", "running_at", "completed_at"]]
    df["modified_at"] = times.max(axis=1)
    df["pinned_deployment_id"] = df["pinned_deployment_id"].map(_deployment).where(started, None)
    df["last_start_at"] = df["running_at"]
    df["last_attempt_deployment_id"] = df["pinned_deployment_id"]
    df["last_attempt_server"] = pd.Series([SDK_VERSION if s else None for s in started], index=df.index,
                                          dtype=object)
    # Restate fills the entry columns only for protocol V3 and older; the command columns hold the same
    df["last_failure_related_entry_index"] = pd.Series([None] * len(df), index=df.index, dtype="Int64")
    df["last_failure_related_entry_name"] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df["last_failure_related_entry_type"] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df["trace_id"] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df["invoked_by_service_name"] = df["invoked_by_target"].map(lambda t: t.split("/")[0] if t else None)
    # Restate counts attempts of an invocation in flight ("increments on start") and has none otherwise
    in_flight = started & (df["status"] != "completed")
    df["retry_count"] = (df["retry_count"].astype("int64") + 1).astype("Int64").where(in_flight, pd.NA)
    df["journal_size"] = df["journal_size"].astype("int64")
    df["journal_commands_size"] = df["journal_commands_size"].astype("int64")
    return df


def invocation_status_table(rt: Runtime) -> pd.DataFrame:
    df = invocation_table(rt)
    cols = ["id", "target", "target_service_name", "target_service_key", "target_handler_name", "target_service_ty",
            "status", "invoked_by", "invoked_by_id", "invoked_by_target", "idempotency_key", "created_at",
            "modified_at", "inboxed_at", "scheduled_start_at", "running_at", "completed_at",
            "pinned_deployment_id", "completion_result", "completion_failure"]
    out = df[cols].copy()
    out["status"] = out["status"].map(lambda s: _RAW_STATUS.get(s, s))
    return out


def deployment_table(rt: Runtime, created_ms: int) -> pd.DataFrame:
    rows = [{"id": d["id"], "ty": "http", "endpoint": d["uri"], "created_at": pd.Timestamp(created_ms, unit="ms",
                                                                                           tz="UTC"),
             "min_service_protocol_version": 5, "max_service_protocol_version": 7}
            for d in deployments(rt, created_ms)]
    df = pd.DataFrame(rows, columns=["id", "ty", "endpoint", "created_at", "min_service_protocol_version",
                                     "max_service_protocol_version"])
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    return df


def journal_table(rt: Runtime) -> pd.DataFrame:
    """sys_journal as Restate 1.7 has it: version 2 rows, command names as the SDK gave them (None for
    notifications) and entry_json for the commands the CLI details (see journal_json)."""
    df = introspect.journal_table(rt)
    raw = {(r.invocation_id, r.index): r for r in adapter.journal_rows(rt)}
    views = adapter.services(rt)
    keys = list(zip(df["id"], df["index"], strict=True))
    df["index"] = df["index"].astype("int64")
    df["version"] = pd.Series([2] * len(df), index=df.index, dtype="int64")
    df["completed"] = pd.Series([True] * len(df), index=df.index, dtype=bool)
    df["name"] = pd.Series([_name(raw.get(k)) for k in keys], index=df.index, dtype=object)
    df["entry_json"] = pd.Series([journal_json.entry_json(raw[k], views) if k in raw else None for k in keys],
                                 index=df.index, dtype=object)
    df["payload"] = df["payload"].map(lambda v: None if v is None else str(v))
    return df


def _name(row: adapter.JournalRow | None) -> str | None:
    if row is None or not row.command:
        return None
    return getattr(row.msg, "name", "") or ""


def tables(rt: Runtime, created_ms: int, sql: str = "") -> dict[str, pd.DataFrame]:
    """The tables a query names (all of them for an empty `sql`): building a journal table is not free."""
    builders: dict[str, Any] = {**introspect.TABLES, "sys_invocation": invocation_table,
                                "sys_invocation_status": invocation_status_table,
                                "sys_deployment": lambda rt: deployment_table(rt, created_ms),
                                "sys_journal": journal_table, "sys_service": _service_table, "state": _state_table}
    text = sql.lower()
    return {name: build(rt) for name, build in builders.items() if not text or name in text}


def _service_table(rt: Runtime) -> pd.DataFrame:
    df = introspect.services(rt)
    df["deployment_id"] = df["deployment_id"].map(_deployment)
    return df


def _state_table(rt: Runtime) -> pd.DataFrame:
    df = introspect.state_table(rt)
    df["value_length"] = df["value_length"].astype("int64")
    return df


def deployments(rt: Runtime, created_ms: int) -> list[dict[str, Any]]:
    """One deployment per revision number: the services registered with it (the notebook is the endpoint)."""
    by_revision: dict[int, list[adapter.ServiceView]] = {}
    for view in adapter.services(rt).values():
        by_revision.setdefault(view.revision, []).append(view)
    return [{"id": adapter.deployment_id(rev), "uri": "http://notebook.playground/", "protocol_type": "BidiStream",
             "http_version": "HTTP/2.0", "created_at": adapter.iso(created_ms), "min_protocol_version": 5,
             "max_protocol_version": 7, "sdk_version": SDK_VERSION,
             "services": [{"name": v.name, "revision": v.revision} for v in views]}
            for rev, views in sorted(by_revision.items())]


# ------------------------------------------------------------------------------------------ running
def run(rt: Runtime, sql: str, created_ms: int) -> Any:
    """The query's result as a pyarrow Table (Restate's types: timestamps in ms UTC, counts Int64)."""
    try:
        import duckdb
    except ImportError:
        raise QueryError("the playground's /query needs DuckDB: pip install 'restate-playground[sql]'") from None
    con = duckdb.connect(config={"enable_external_access": False, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False, "threads": 1})
    try:
        con.execute("SET lock_configuration = true")
        for name, df in tables(rt, created_ms, sql).items():
            for col in df.columns:  # bytes columns: DuckDB takes them as BLOB only from a typed column
                if df[col].dtype == object and df[col].map(lambda v: isinstance(v, (bytes, bytearray))).any():
                    df[col] = df[col].map(lambda v: bytes(v) if isinstance(v, (bytes, bytearray)) else None)
            con.register(name, df)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                relation = con.sql(translate(sql))
                table = relation.to_arrow_table() if relation is not None else _empty()
            except duckdb.Error as exc:
                raise QueryError(str(exc).split("\n")[0]) from None
        return _restate_types(table)
    finally:
        con.close()


def _empty() -> Any:
    import pyarrow as pa
    return pa.table({})


def _restate_types(table: Any) -> Any:
    import pyarrow as pa
    fields = []
    for f in table.schema:
        if pa.types.is_decimal(f.type) and f.type.scale == 0:  # DuckDB's SUM of integers: Int64 as on Restate
            fields.append(pa.field(f.name, pa.int64()))
        elif pa.types.is_timestamp(f.type):
            fields.append(pa.field(f.name, pa.timestamp("ms", tz="UTC")))
        elif pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type):
            fields.append(pa.field(f.name, pa.utf8()))
        elif pa.types.is_large_binary(f.type) or pa.types.is_binary_view(f.type):
            fields.append(pa.field(f.name, pa.binary()))
        else:
            fields.append(f)
    return table.cast(pa.schema(fields))


def to_json_rows(table: Any) -> list[dict[str, Any]]:
    """Rows as Restate's JSON answer writes them: nulls left out, times RFC 3339 UTC, bytes as hex."""
    rows = []
    for row in table.to_pylist():
        out = {}
        for k, v in row.items():
            if v is None:
                continue
            if isinstance(v, dt.datetime):
                v = v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
            elif isinstance(v, (bytes, bytearray)):
                v = bytes(v).hex()
            elif isinstance(v, decimal.Decimal):  # DuckDB's SUM of integers
                v = int(v) if v == v.to_integral_value() else float(v)
            elif isinstance(v, (dt.date, dt.time)):
                v = v.isoformat()
            out[k] = v
        rows.append(out)
    return rows


def to_arrow_stream(table: Any) -> bytes:
    import pyarrow as pa
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
