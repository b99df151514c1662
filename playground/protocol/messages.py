"""Restate service-protocol V7 messages, defined here and compiled at import by the protobuf library.

The wire facts (type ids, field numbers, field types) are Restate's; the table below is our own
description of them. Building descriptors at import keeps the project free of generated code and of
a protoc step, and lets tests check the table directly. The table is encoded straight to the bytes of a
FileDescriptorProto (a few dozen lines below), which costs well under a millisecond; going through
protobuf's own descriptor_pb2 classes would add its import (15-25 ms) to `import playground`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool, message_factory

PACKAGE = "playground.protocol.v7"


@dataclass(frozen=True)
class F:
    """One field: `kind` is a scalar, enum or message name; `repeated`/`oneof`/`optional` as in proto3."""

    name: str
    number: int
    kind: str
    repeated: bool = False
    oneof: str | None = None
    optional: bool = False


# FieldDescriptorProto.Type values (descriptor.proto)
_SCALARS = {"bytes": 12, "string": 9, "uint32": 13, "uint64": 4, "int32": 5, "bool": 8}
_TYPE_MESSAGE, _TYPE_ENUM = 11, 14
_LABEL_OPTIONAL, _LABEL_REPEATED = 1, 3

# Enums: (value name, number) pairs. Proto3 enums are open, so numbers outside these still parse.
ENUMS: dict[str, list[tuple[str, int]]] = {
    "ServiceProtocolVersion": [("SERVICE_PROTOCOL_VERSION_UNSPECIFIED", 0), ("V1", 1), ("V2", 2), ("V3", 3),
                               ("V4", 4), ("V5", 5), ("V6", 6), ("V7", 7)],
    "CombinatorType": [("COMBINATOR_TYPE_UNKNOWN", 0), ("FIRST_COMPLETED", 1), ("ALL_COMPLETED", 2),
                       ("FIRST_SUCCEEDED_OR_ALL_FAILED", 3), ("ALL_SUCCEEDED_OR_FIRST_FAILED", 4)],
    "ErrorBehavior": [("RETRY", 0), ("PAUSE", 1), ("FAIL", 2)],
    "BuiltInSignal": [("SIGNAL_UNKNOWN", 0), ("CANCEL", 1)],
}

_VALUE_FAILURE = [F("value", 5, "Value", oneof="result"), F("failure", 6, "Failure", oneof="result")]
_VOID_VALUE_FAILURE = [F("void", 4, "Void", oneof="result"), *_VALUE_FAILURE]

# Nested value types first, then control messages, commands and notifications.
SCHEMA: dict[str, list[F]] = {
    "Void": [],
    "Value": [F("content", 1, "bytes")],
    "FailureMetadata": [F("key", 1, "string"), F("value", 2, "string")],
    "Failure": [F("code", 1, "uint32"), F("message", 2, "string"), F("metadata", 3, "FailureMetadata", repeated=True)],
    "Header": [F("key", 1, "string"), F("value", 2, "string")],
    "StateKeys": [F("keys", 1, "bytes", repeated=True)],
    "StateEntry": [F("key", 1, "bytes"), F("value", 2, "bytes")],
    "WorkflowTarget": [
        F("workflow_name", 1, "string"),
        F("workflow_key", 2, "string"),
        F("scope", 3, "string", optional=True),  # V7
    ],
    "IdempotentRequestTarget": [
        F("service_name", 1, "string"),
        F("service_key", 2, "string", optional=True),
        F("handler_name", 3, "string"),
        F("idempotency_key", 4, "string"),
        F("scope", 5, "string", optional=True),  # V7
    ],
    "Future": [
        F("waiting_completions", 1, "uint32", repeated=True),
        F("waiting_signals", 2, "uint32", repeated=True),
        F("waiting_named_signals", 3, "string", repeated=True),
        F("nested_futures", 4, "Future", repeated=True),
        F("combinator_type", 5, "CombinatorType"),
    ],
    # --- control ---
    "Start": [
        F("id", 1, "bytes"),
        F("debug_id", 2, "string"),
        F("known_entries", 3, "uint32"),
        F("state_map", 4, "StateEntry", repeated=True),
        F("partial_state", 5, "bool"),
        F("key", 6, "string"),
        F("retry_count_since_last_stored_entry", 7, "uint32"),
        F("duration_since_last_stored_entry", 8, "uint64"),
        F("random_seed", 9, "uint64"),
        F("scope", 10, "string", optional=True),  # V7, like the two below
        F("limit_key", 11, "string", optional=True),
        F("idempotency_key", 12, "string", optional=True),
    ],
    "Suspension": [F("awaiting_on", 4, "Future")],
    # V5/V6 layout of the same frame (0x0001): flat lists instead of a Future tree
    "SuspensionV5": [
        F("waiting_completions", 1, "uint32", repeated=True),
        F("waiting_signals", 2, "uint32", repeated=True),
        F("waiting_named_signals", 3, "string", repeated=True),
    ],
    "Error": [
        F("code", 1, "uint32"),
        F("message", 2, "string"),
        F("stacktrace", 3, "string"),
        F("related_command_index", 4, "uint32", optional=True),
        F("related_command_name", 5, "string", optional=True),
        F("related_command_type", 6, "uint32", optional=True),
        F("next_retry_delay", 8, "uint64", optional=True),
        F("behavior", 9, "ErrorBehavior"),  # V7
    ],
    "End": [],
    "CommandAck": [F("command_index", 1, "uint32")],
    "ProposeRunCompletion": [
        F("result_completion_id", 1, "uint32"),
        F("value", 14, "bytes", oneof="result"),
        F("failure", 15, "Failure", oneof="result"),
    ],
    "AwaitingOn": [F("awaiting_on", 1, "Future"), F("executing_side_effects", 2, "bool")],
    "ProposeRunCompletionAck": [F("completion_id", 1, "uint32")],
    # --- commands ---
    "Input": [F("headers", 1, "Header", repeated=True), F("value", 14, "Value"), F("name", 12, "string")],
    "Output": [F("value", 14, "Value", oneof="result"), F("failure", 15, "Failure", oneof="result"),
               F("name", 12, "string")],
    "GetLazyState": [F("key", 1, "bytes"), F("result_completion_id", 11, "uint32"), F("name", 12, "string")],
    "SetState": [F("key", 1, "bytes"), F("value", 3, "Value"), F("name", 12, "string")],
    "ClearState": [F("key", 1, "bytes"), F("name", 12, "string")],
    "ClearAllState": [F("name", 12, "string")],
    "GetLazyStateKeys": [F("result_completion_id", 11, "uint32"), F("name", 12, "string")],
    "GetEagerState": [
        F("key", 1, "bytes"),
        F("void", 13, "Void", oneof="result"),
        F("value", 14, "Value", oneof="result"),
        F("name", 12, "string"),
    ],
    "GetEagerStateKeys": [F("value", 14, "StateKeys"), F("name", 12, "string")],
    "GetPromise": [F("key", 1, "string"), F("result_completion_id", 11, "uint32"), F("name", 12, "string")],
    "PeekPromise": [F("key", 1, "string"), F("result_completion_id", 11, "uint32"), F("name", 12, "string")],
    "CompletePromise": [
        F("key", 1, "string"),
        F("completion_value", 2, "Value", oneof="completion"),
        F("completion_failure", 3, "Failure", oneof="completion"),
        F("result_completion_id", 11, "uint32"),
        F("name", 12, "string"),
    ],
    "Sleep": [F("wake_up_time", 1, "uint64"), F("result_completion_id", 11, "uint32"), F("name", 12, "string")],
    "Call": [
        F("service_name", 1, "string"),
        F("handler_name", 2, "string"),
        F("parameter", 3, "bytes"),
        F("headers", 4, "Header", repeated=True),
        F("key", 5, "string"),
        F("idempotency_key", 6, "string", optional=True),
        F("scope", 7, "string", optional=True),  # V7, like limit_key
        F("limit_key", 8, "string", optional=True),
        F("invocation_id_notification_idx", 10, "uint32"),
        F("result_completion_id", 11, "uint32"),
        F("name", 12, "string"),
    ],
    "OneWayCall": [
        F("service_name", 1, "string"),
        F("handler_name", 2, "string"),
        F("parameter", 3, "bytes"),
        F("invoke_time", 4, "uint64"),
        F("headers", 5, "Header", repeated=True),
        F("key", 6, "string"),
        F("idempotency_key", 7, "string", optional=True),
        F("scope", 8, "string", optional=True),  # V7, like limit_key
        F("limit_key", 9, "string", optional=True),
        F("invocation_id_notification_idx", 10, "uint32"),
        F("name", 12, "string"),
    ],
    "SendSignal": [
        F("target_invocation_id", 1, "string"),
        F("idx", 2, "uint32", oneof="signal_id"),
        F("name", 3, "string", oneof="signal_id"),
        F("void", 4, "Void", oneof="result"),
        F("value", 5, "Value", oneof="result"),
        F("failure", 6, "Failure", oneof="result"),
        F("entry_name", 12, "string"),
    ],
    "Run": [F("result_completion_id", 11, "uint32"), F("name", 12, "string")],
    "AttachInvocation": [
        F("invocation_id", 1, "string", oneof="target"),
        F("idempotent_request_target", 3, "IdempotentRequestTarget", oneof="target"),
        F("workflow_target", 4, "WorkflowTarget", oneof="target"),
        F("result_completion_id", 11, "uint32"),
        F("name", 12, "string"),
    ],
    "GetInvocationOutput": [
        F("invocation_id", 1, "string", oneof="target"),
        F("idempotent_request_target", 3, "IdempotentRequestTarget", oneof="target"),
        F("workflow_target", 4, "WorkflowTarget", oneof="target"),
        F("result_completion_id", 11, "uint32"),
        F("name", 12, "string"),
    ],
    "CompleteAwakeable": [
        F("awakeable_id", 1, "string"),
        F("value", 2, "Value", oneof="result"),
        F("failure", 3, "Failure", oneof="result"),
        F("name", 12, "string"),
    ],
    # --- notifications (all share the NotificationTemplate layout; the template itself is never framed) ---
    "NotificationTemplate": [
        F("completion_id", 1, "uint32", oneof="id"),
        F("signal_id", 2, "uint32", oneof="id"),
        F("signal_name", 3, "string", oneof="id"),
        F("void", 4, "Void", oneof="result"),
        F("value", 5, "Value", oneof="result"),
        F("failure", 6, "Failure", oneof="result"),
        F("invocation_id", 16, "string", oneof="result"),
        F("state_keys", 17, "StateKeys", oneof="result"),
    ],
    "GetLazyStateCompletion": [F("completion_id", 1, "uint32"), F("void", 4, "Void", oneof="result"),
                               F("value", 5, "Value", oneof="result")],
    "GetLazyStateKeysCompletion": [F("completion_id", 1, "uint32"), F("state_keys", 17, "StateKeys")],
    "GetPromiseCompletion": [F("completion_id", 1, "uint32"), *_VALUE_FAILURE],
    "PeekPromiseCompletion": [F("completion_id", 1, "uint32"), *_VOID_VALUE_FAILURE],
    "CompletePromiseCompletion": [
        F("completion_id", 1, "uint32"),
        F("void", 4, "Void", oneof="result"),
        F("failure", 6, "Failure", oneof="result"),
    ],
    "SleepCompletion": [F("completion_id", 1, "uint32"), F("void", 4, "Void")],
    "CallInvocationIdCompletion": [F("completion_id", 1, "uint32"), F("invocation_id", 16, "string")],
    "CallCompletion": [F("completion_id", 1, "uint32"), *_VALUE_FAILURE],
    "RunCompletion": [F("completion_id", 1, "uint32"), *_VALUE_FAILURE],
    "AttachInvocationCompletion": [F("completion_id", 1, "uint32"), *_VALUE_FAILURE],
    "GetInvocationOutputCompletion": [F("completion_id", 1, "uint32"), *_VOID_VALUE_FAILURE],
    "Signal": [
        F("idx", 2, "uint32", oneof="signal_id"),
        F("name", 3, "string", oneof="signal_id"),
        *_VOID_VALUE_FAILURE,
    ],
}

# Frame type ids (u16 in the frame header).
TYPE_IDS: dict[str, int] = {
    "Start": 0x0000,
    "Suspension": 0x0001,
    "Error": 0x0002,
    "End": 0x0003,
    "CommandAck": 0x0004,
    "ProposeRunCompletion": 0x0005,
    "AwaitingOn": 0x0006,
    "ProposeRunCompletionAck": 0x0007,
    "Input": 0x0400,
    "Output": 0x0401,
    "GetLazyState": 0x0402,
    "SetState": 0x0403,
    "ClearState": 0x0404,
    "ClearAllState": 0x0405,
    "GetLazyStateKeys": 0x0406,
    "GetEagerState": 0x0407,
    "GetEagerStateKeys": 0x0408,
    "GetPromise": 0x0409,
    "PeekPromise": 0x040A,
    "CompletePromise": 0x040B,
    "Sleep": 0x040C,
    "Call": 0x040D,
    "OneWayCall": 0x040E,
    "SendSignal": 0x0410,
    "Run": 0x0411,
    "AttachInvocation": 0x0412,
    "GetInvocationOutput": 0x0413,
    "CompleteAwakeable": 0x0414,
    "GetLazyStateCompletion": 0x8002,
    "GetLazyStateKeysCompletion": 0x8006,
    "GetPromiseCompletion": 0x8009,
    "PeekPromiseCompletion": 0x800A,
    "CompletePromiseCompletion": 0x800B,
    "SleepCompletion": 0x800C,
    "CallCompletion": 0x800D,
    "CallInvocationIdCompletion": 0x800E,
    "RunCompletion": 0x8011,
    "AttachInvocationCompletion": 0x8012,
    "GetInvocationOutputCompletion": 0x8013,
    "Signal": 0xFBFF,
}
NAMES_BY_ID: dict[int, str] = {v: k for k, v in TYPE_IDS.items()}

CANCEL_SIGNAL = 1  # built-in signal index; awakeables use 17 and up
ERROR_RETRY, ERROR_PAUSE, ERROR_FAIL = 0, 1, 2  # Error.behavior (V7): what the SDK asks the server to do


def is_command(type_id: int) -> bool:
    return 0x0400 <= type_id <= 0x7FFF or type_id >= 0xFC00


def is_notification(type_id: int) -> bool:
    return 0x8000 <= type_id <= 0xFBFF


def entry_type(type_id: int) -> str:
    """The label Restate's sys_journal uses, e.g. 'Command: Call' or 'Notification: CallInvocationId'."""
    name = NAMES_BY_ID.get(type_id, hex(type_id))
    if is_command(type_id):
        return f"Command: {name}"
    if is_notification(type_id):
        return f"Notification: {name.removesuffix('Completion')}"
    return name


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _num(field: int, n: int) -> bytes:
    """A varint field (wire type 0)."""
    return _varint(field << 3) + _varint(n)


def _sub(field: int, payload: bytes | str) -> bytes:
    """A length-delimited field (wire type 2): a string or an embedded message."""
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _field_proto(f: F, oneof_index: int | None) -> bytes:
    """A FieldDescriptorProto: name 1, number 3, label 4, type 5, type_name 6, oneof_index 9, json_name 10,
    proto3_optional 17."""
    label = _LABEL_REPEATED if f.repeated else _LABEL_OPTIONAL
    out = _sub(1, f.name) + _num(3, f.number) + _num(4, label)
    if f.kind in _SCALARS:
        out += _num(5, _SCALARS[f.kind])
    else:
        out += _num(5, _TYPE_ENUM if f.kind in ENUMS else _TYPE_MESSAGE) + _sub(6, f".{PACKAGE}.{f.kind}")
    if oneof_index is not None:
        out += _num(9, oneof_index)
    out += _sub(10, f.name)
    if oneof_index is not None:
        out += _num(17, int(f.optional))
    return out


def _message_proto(name: str, fields: list[F]) -> bytes:
    """A DescriptorProto: name 1, field 2, oneof_decl 8 (a proto3 `optional` is a oneof of its own)."""
    oneofs: list[str] = []
    out = _sub(1, name)
    for f in fields:
        group = f.oneof or (f"_{f.name}" if f.optional else None)
        if group is not None and group not in oneofs:
            oneofs.append(group)
        out += _sub(2, _field_proto(f, None if group is None else oneofs.index(group)))
    return out + b"".join(_sub(8, _sub(1, group)) for group in oneofs)


def file_descriptor() -> bytes:
    """The serialized FileDescriptorProto of ENUMS and SCHEMA: name 1, package 2, message_type 4, enum_type 5,
    syntax 12 (EnumDescriptorProto: name 1, value 2; EnumValueDescriptorProto: name 1, number 2)."""
    out = _sub(1, "playground_protocol_v7.proto") + _sub(2, PACKAGE)
    out += b"".join(_sub(4, _message_proto(name, fields)) for name, fields in SCHEMA.items())
    for enum_name, values in ENUMS.items():
        out += _sub(5, _sub(1, enum_name) + b"".join(_sub(2, _sub(1, v) + _num(2, n)) for v, n in values))
    return out + _sub(12, "proto3")


def _build_classes() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file_descriptor())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in SCHEMA
    }


CLASSES: dict[str, type] = _build_classes()


def new(message: str, /, **fields: Any) -> Any:
    """Build a message by its short name, e.g. new('Value', content=b'1'); fields may include `name`."""
    return CLASSES[message](**fields)


def parse(type_id: int, payload: bytes, version: int = 7) -> Any:
    """Decode a frame payload. Before V7 a Suspension carried flat lists; it is returned as the V7 message,
    with those lists moved into its `awaiting_on` Future, so callers see one shape."""
    if type_id == _SUSPENSION and version < 7:
        old = CLASSES["SuspensionV5"]()
        old.ParseFromString(payload)
        fut = CLASSES["Future"](waiting_completions=old.waiting_completions, waiting_signals=old.waiting_signals,
                                waiting_named_signals=old.waiting_named_signals, combinator_type=1)
        return CLASSES["Suspension"](awaiting_on=fut)
    msg = _CLASSES_BY_ID[type_id]()
    msg.ParseFromString(payload)
    return msg


_TYPE_IDS_BY_CLASS: dict[type, int] = {CLASSES[name]: type_id for name, type_id in TYPE_IDS.items()}
_CLASSES_BY_ID: dict[int, type] = {type_id: cls for cls, type_id in _TYPE_IDS_BY_CLASS.items()}
_SUSPENSION = TYPE_IDS["Suspension"]


def type_id_of(msg: Any) -> int:
    type_id = _TYPE_IDS_BY_CLASS.get(type(msg))
    return type_id if type_id is not None else TYPE_IDS[msg.DESCRIPTOR.name]

