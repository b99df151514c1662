"""Questions asked of a journal and of what an SDK awaits, answered in one place each."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..protocol import messages
from .model import Invocation, JournalEntry, Target

_SIGNAL = messages.TYPE_IDS["Signal"]
_CALL_ID = messages.TYPE_IDS["CallInvocationIdCompletion"]


def answered_completion_ids(journal: Iterable[JournalEntry], *kinds: str) -> set[int]:
    """The completion ids that have a notification in `journal` (only of these notification `kinds`, e.g.
    "CallCompletion", when given). Signals are not completions: their ids are signal ids."""
    wanted = {messages.TYPE_IDS[k] for k in kinds}
    return {e.msg.completion_id for e in journal
            if messages.is_notification(e.type_id) and e.type_id != _SIGNAL
            and (not wanted or e.type_id in wanted)}


def awaited(future: Any, with_cancel: bool = True) -> tuple[list[int], list[int], list[str]]:
    """What an SDK's Future message (AwaitingOn, Suspension) waits for, through its nested futures:
    (completion ids, signal ids, signal names). `with_cancel=False` leaves out the built-in cancel
    signal, which every await also waits on."""
    completions: list[int] = []
    signals: list[int] = []
    named: list[str] = []
    stack = [future]
    while stack:
        f = stack.pop()
        completions.extend(f.waiting_completions)
        signals.extend(s for s in f.waiting_signals if with_cancel or s != messages.CANCEL_SIGNAL)
        named.extend(f.waiting_named_signals)
        stack.extend(reversed(f.nested_futures))
    return completions, signals, named


def call_target(msg: Any) -> Target:
    """The target a Call or OneWayCall command names."""
    return Target(msg.service_name, msg.handler_name, msg.key or None)


def call_target_id(inv: Any, call: Any) -> str | None:
    """The id of the invocation a Call or OneWayCall command of `inv` created (from the journal's
    CallInvocationId notification), or None before it is known."""
    idx = call.invocation_id_notification_idx
    for e in inv.journal:
        if e.type_id == _CALL_ID and e.msg.completion_id == idx:
            return e.msg.invocation_id
    return None


# json's scanner (in C): one value from an index, without json.loads' per-call set-up
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_payload(data: bytes) -> Any:
    """JSON when it parses, text when it decodes, else the raw bytes. The usual payload (UTF-8 JSON with no
    surrounding blanks) is parsed by json's scanner directly, a third of json.loads' cost; anything else goes
    through json.loads, which gives the same value for those."""
    if data == b"":
        return None
    try:
        text = data.decode()
        value, end = _SCAN(text, 0)
        if end == len(text):
            return value
    except (ValueError, StopIteration):
        pass
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data


def describe_entry(e: JournalEntry) -> str:
    """One journal entry in words, e.g. `Command: SetState 'a' = 1`."""
    m = e.msg
    text = e.entry_type
    name = m.key.decode() if isinstance(getattr(m, "key", None), bytes) else e.name
    if messages.NAMES_BY_ID.get(e.type_id) in ("Call", "OneWayCall"):
        name = str(call_target(m))
    if name:
        text += f" {name!r}"
    payload = payload_of(m)
    if payload is not None:
        text += f" = {payload!r}"
    return text


_PAYLOAD_FIELDS = ("value", "failure", "completion_value", "completion_failure", "parameter")
_payload_fields: dict[type, tuple[str, ...]] = {}  # message class -> which of _PAYLOAD_FIELDS it has


def payload_of(m: Any) -> Any:
    """The value, failure or parameter a journal message carries, decoded for reading."""
    fields = _payload_fields.get(type(m))
    if fields is None:
        fields = _payload_fields[type(m)] = tuple(f for f in _PAYLOAD_FIELDS if f in m.DESCRIPTOR.fields_by_name)
    for field in fields:
        if field == "parameter" or m.HasField(field):
            v = getattr(m, field)
            if hasattr(v, "content"):
                return decode_payload(v.content)
            if isinstance(v, bytes):
                return decode_payload(v)
            if hasattr(v, "code"):
                return f"[{v.code}] {v.message}"
    return None


def wakes(inv: Invocation, msg: Any) -> bool:
    """Whether notification `msg` is one a suspended `inv` waits for."""
    if inv.waiting_ids is None:
        return False
    completions, signals, named = inv.waiting_ids
    if msg.DESCRIPTOR.name == "Signal":
        kind = msg.WhichOneof("signal_id")
        return (msg.idx in signals) if kind == "idx" else (msg.name in named)
    return getattr(msg, "completion_id", None) in completions


def diverged(inv: Invocation, command_index: int) -> str | None:
    """For a journal mismatch (570): the stored entry the new code path diverged from."""
    commands = [(i, e) for i, e in enumerate(inv.journal) if messages.is_command(e.type_id)]
    if command_index >= len(commands):
        return None
    i, e = commands[command_index]
    return f"journal entry {i}, which recorded {describe_entry(e)}"


def related_fields(e: Any) -> tuple[int | None, str | None, str | None]:
    """The command an SDK's Error names (index, name, type), as Restate keeps them for sys_invocation."""
    index = e.related_command_index if e.HasField("related_command_index") else None
    name = e.related_command_name if e.HasField("related_command_name") and e.related_command_name else None
    kind = messages.NAMES_BY_ID.get(e.related_command_type) if e.HasField("related_command_type") else None
    return index, name, kind
