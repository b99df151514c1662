"""The V7 message table: type ids, entry labels, field numbers and round trips."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

from playground.protocol import messages

# Service protocol V7 as restate-server 1.7.x and restate-sdk 1.3.0 speak it (protocol.proto in
# restatedev/restate, service-protocol/dev/restate/service/protocol.proto; V7 added the scope/limit_key and
# idempotency_key fields, Future, AwaitingOn, ProposeRunCompletionAck and ErrorMessage.behavior). Every
# message, written out here as facts: (official name, our short name, frame type id or None for nested
# types, [(field, number, type, label)]), label being "", "repeated", "optional" (proto3 optional, so it
# tracks presence) or "oneof <group>".
V7_MESSAGES: list[tuple[str, str, int | None, list[tuple[str, int, str, str]]]] = [
    ("StartMessage.StateEntry", "StateEntry", None, [
        ("key", 1, "bytes", ""),
        ("value", 2, "bytes", ""),
    ]),
    ("StartMessage", "Start", 0x0000, [
        ("id", 1, "bytes", ""),
        ("debug_id", 2, "string", ""),
        ("known_entries", 3, "uint32", ""),
        ("state_map", 4, "StateEntry", "repeated"),
        ("partial_state", 5, "bool", ""),
        ("key", 6, "string", ""),
        ("retry_count_since_last_stored_entry", 7, "uint32", ""),
        ("duration_since_last_stored_entry", 8, "uint64", ""),
        ("random_seed", 9, "uint64", ""),
        ("scope", 10, "string", "optional"),
        ("limit_key", 11, "string", "optional"),
        ("idempotency_key", 12, "string", "optional"),
    ]),
    ("Future", "Future", None, [
        ("waiting_completions", 1, "uint32", "repeated"),
        ("waiting_signals", 2, "uint32", "repeated"),
        ("waiting_named_signals", 3, "string", "repeated"),
        ("nested_futures", 4, "Future", "repeated"),
        ("combinator_type", 5, "CombinatorType", ""),
    ]),
    ("SuspensionMessage", "Suspension", 0x0001, [
        ("awaiting_on", 4, "Future", ""),
    ]),
    ("ErrorMessage", "Error", 0x0002, [
        ("code", 1, "uint32", ""),
        ("message", 2, "string", ""),
        ("stacktrace", 3, "string", ""),
        ("related_command_index", 4, "uint32", "optional"),
        ("related_command_name", 5, "string", "optional"),
        ("related_command_type", 6, "uint32", "optional"),
        ("next_retry_delay", 8, "uint64", "optional"),
        ("behavior", 9, "ErrorBehavior", ""),
    ]),
    ("EndMessage", "End", 0x0003, [
    ]),
    ("CommandAckMessage", "CommandAck", 0x0004, [
        ("command_index", 1, "uint32", ""),
    ]),
    ("ProposeRunCompletionMessage", "ProposeRunCompletion", 0x0005, [
        ("result_completion_id", 1, "uint32", ""),
        ("value", 14, "bytes", "oneof result"),
        ("failure", 15, "Failure", "oneof result"),
    ]),
    ("AwaitingOnMessage", "AwaitingOn", 0x0006, [
        ("awaiting_on", 1, "Future", ""),
        ("executing_side_effects", 2, "bool", ""),
    ]),
    ("ProposeRunCompletionAckMessage", "ProposeRunCompletionAck", 0x0007, [
        ("completion_id", 1, "uint32", ""),
    ]),
    ("NotificationTemplate", "NotificationTemplate", None, [
        ("completion_id", 1, "uint32", "oneof id"),
        ("signal_id", 2, "uint32", "oneof id"),
        ("signal_name", 3, "string", "oneof id"),
        ("void", 4, "Void", "oneof result"),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
        ("invocation_id", 16, "string", "oneof result"),
        ("state_keys", 17, "StateKeys", "oneof result"),
    ]),
    ("InputCommandMessage", "Input", 0x0400, [
        ("headers", 1, "Header", "repeated"),
        ("name", 12, "string", ""),
        ("value", 14, "Value", ""),
    ]),
    ("OutputCommandMessage", "Output", 0x0401, [
        ("name", 12, "string", ""),
        ("value", 14, "Value", "oneof result"),
        ("failure", 15, "Failure", "oneof result"),
    ]),
    ("GetLazyStateCommandMessage", "GetLazyState", 0x0402, [
        ("key", 1, "bytes", ""),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("GetLazyStateCompletionNotificationMessage", "GetLazyStateCompletion", 0x8002, [
        ("completion_id", 1, "uint32", ""),
        ("void", 4, "Void", "oneof result"),
        ("value", 5, "Value", "oneof result"),
    ]),
    ("SetStateCommandMessage", "SetState", 0x0403, [
        ("key", 1, "bytes", ""),
        ("value", 3, "Value", ""),
        ("name", 12, "string", ""),
    ]),
    ("ClearStateCommandMessage", "ClearState", 0x0404, [
        ("key", 1, "bytes", ""),
        ("name", 12, "string", ""),
    ]),
    ("ClearAllStateCommandMessage", "ClearAllState", 0x0405, [
        ("name", 12, "string", ""),
    ]),
    ("GetLazyStateKeysCommandMessage", "GetLazyStateKeys", 0x0406, [
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("GetLazyStateKeysCompletionNotificationMessage", "GetLazyStateKeysCompletion", 0x8006, [
        ("completion_id", 1, "uint32", ""),
        ("state_keys", 17, "StateKeys", ""),
    ]),
    ("GetEagerStateCommandMessage", "GetEagerState", 0x0407, [
        ("key", 1, "bytes", ""),
        ("name", 12, "string", ""),
        ("void", 13, "Void", "oneof result"),
        ("value", 14, "Value", "oneof result"),
    ]),
    ("GetEagerStateKeysCommandMessage", "GetEagerStateKeys", 0x0408, [
        ("name", 12, "string", ""),
        ("value", 14, "StateKeys", ""),
    ]),
    ("GetPromiseCommandMessage", "GetPromise", 0x0409, [
        ("key", 1, "string", ""),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("GetPromiseCompletionNotificationMessage", "GetPromiseCompletion", 0x8009, [
        ("completion_id", 1, "uint32", ""),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("PeekPromiseCommandMessage", "PeekPromise", 0x040A, [
        ("key", 1, "string", ""),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("PeekPromiseCompletionNotificationMessage", "PeekPromiseCompletion", 0x800A, [
        ("completion_id", 1, "uint32", ""),
        ("void", 4, "Void", "oneof result"),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("CompletePromiseCommandMessage", "CompletePromise", 0x040B, [
        ("key", 1, "string", ""),
        ("completion_value", 2, "Value", "oneof completion"),
        ("completion_failure", 3, "Failure", "oneof completion"),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("CompletePromiseCompletionNotificationMessage", "CompletePromiseCompletion", 0x800B, [
        ("completion_id", 1, "uint32", ""),
        ("void", 4, "Void", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("SleepCommandMessage", "Sleep", 0x040C, [
        ("wake_up_time", 1, "uint64", ""),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("SleepCompletionNotificationMessage", "SleepCompletion", 0x800C, [
        ("completion_id", 1, "uint32", ""),
        ("void", 4, "Void", ""),
    ]),
    ("CallCommandMessage", "Call", 0x040D, [
        ("service_name", 1, "string", ""),
        ("handler_name", 2, "string", ""),
        ("parameter", 3, "bytes", ""),
        ("headers", 4, "Header", "repeated"),
        ("key", 5, "string", ""),
        ("idempotency_key", 6, "string", "optional"),
        ("scope", 7, "string", "optional"),
        ("limit_key", 8, "string", "optional"),
        ("invocation_id_notification_idx", 10, "uint32", ""),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("CallInvocationIdCompletionNotificationMessage", "CallInvocationIdCompletion", 0x800E, [
        ("completion_id", 1, "uint32", ""),
        ("invocation_id", 16, "string", ""),
    ]),
    ("CallCompletionNotificationMessage", "CallCompletion", 0x800D, [
        ("completion_id", 1, "uint32", ""),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("OneWayCallCommandMessage", "OneWayCall", 0x040E, [
        ("service_name", 1, "string", ""),
        ("handler_name", 2, "string", ""),
        ("parameter", 3, "bytes", ""),
        ("invoke_time", 4, "uint64", ""),
        ("headers", 5, "Header", "repeated"),
        ("key", 6, "string", ""),
        ("idempotency_key", 7, "string", "optional"),
        ("scope", 8, "string", "optional"),
        ("limit_key", 9, "string", "optional"),
        ("invocation_id_notification_idx", 10, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("SendSignalCommandMessage", "SendSignal", 0x0410, [
        ("target_invocation_id", 1, "string", ""),
        ("idx", 2, "uint32", "oneof signal_id"),
        ("name", 3, "string", "oneof signal_id"),
        ("void", 4, "Void", "oneof result"),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
        ("entry_name", 12, "string", ""),
    ]),
    ("RunCommandMessage", "Run", 0x0411, [
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("RunCompletionNotificationMessage", "RunCompletion", 0x8011, [
        ("completion_id", 1, "uint32", ""),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("AttachInvocationCommandMessage", "AttachInvocation", 0x0412, [
        ("invocation_id", 1, "string", "oneof target"),
        ("idempotent_request_target", 3, "IdempotentRequestTarget", "oneof target"),
        ("workflow_target", 4, "WorkflowTarget", "oneof target"),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("AttachInvocationCompletionNotificationMessage", "AttachInvocationCompletion", 0x8012, [
        ("completion_id", 1, "uint32", ""),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("GetInvocationOutputCommandMessage", "GetInvocationOutput", 0x0413, [
        ("invocation_id", 1, "string", "oneof target"),
        ("idempotent_request_target", 3, "IdempotentRequestTarget", "oneof target"),
        ("workflow_target", 4, "WorkflowTarget", "oneof target"),
        ("result_completion_id", 11, "uint32", ""),
        ("name", 12, "string", ""),
    ]),
    ("GetInvocationOutputCompletionNotificationMessage", "GetInvocationOutputCompletion", 0x8013, [
        ("completion_id", 1, "uint32", ""),
        ("void", 4, "Void", "oneof result"),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("CompleteAwakeableCommandMessage", "CompleteAwakeable", 0x0414, [
        ("awakeable_id", 1, "string", ""),
        ("value", 2, "Value", "oneof result"),
        ("failure", 3, "Failure", "oneof result"),
        ("name", 12, "string", ""),
    ]),
    ("SignalNotificationMessage", "Signal", 0xFBFF, [
        ("idx", 2, "uint32", "oneof signal_id"),
        ("name", 3, "string", "oneof signal_id"),
        ("void", 4, "Void", "oneof result"),
        ("value", 5, "Value", "oneof result"),
        ("failure", 6, "Failure", "oneof result"),
    ]),
    ("StateKeys", "StateKeys", None, [
        ("keys", 1, "bytes", "repeated"),
    ]),
    ("Value", "Value", None, [
        ("content", 1, "bytes", ""),
    ]),
    ("Failure", "Failure", None, [
        ("code", 1, "uint32", ""),
        ("message", 2, "string", ""),
        ("metadata", 3, "FailureMetadata", "repeated"),
    ]),
    ("FailureMetadata", "FailureMetadata", None, [
        ("key", 1, "string", ""),
        ("value", 2, "string", ""),
    ]),
    ("Header", "Header", None, [
        ("key", 1, "string", ""),
        ("value", 2, "string", ""),
    ]),
    ("WorkflowTarget", "WorkflowTarget", None, [
        ("workflow_name", 1, "string", ""),
        ("workflow_key", 2, "string", ""),
        ("scope", 3, "string", "optional"),
    ]),
    ("IdempotentRequestTarget", "IdempotentRequestTarget", None, [
        ("service_name", 1, "string", ""),
        ("service_key", 2, "string", "optional"),
        ("handler_name", 3, "string", ""),
        ("idempotency_key", 4, "string", ""),
        ("scope", 5, "string", "optional"),
    ]),
    ("Void", "Void", None, [
    ]),
]

V7_ENUMS: dict[str, list[tuple[str, int]]] = {
    "ServiceProtocolVersion": [("SERVICE_PROTOCOL_VERSION_UNSPECIFIED", 0), ("V1", 1), ("V2", 2), ("V3", 3),
                               ("V4", 4), ("V5", 5), ("V6", 6), ("V7", 7)],
    "CombinatorType": [("COMBINATOR_TYPE_UNKNOWN", 0), ("FIRST_COMPLETED", 1), ("ALL_COMPLETED", 2),
                       ("FIRST_SUCCEEDED_OR_ALL_FAILED", 3), ("ALL_SUCCEEDED_OR_FIRST_FAILED", 4)],
    "ErrorBehavior": [("RETRY", 0), ("PAUSE", 1), ("FAIL", 2)],
    "BuiltInSignal": [("SIGNAL_UNKNOWN", 0), ("CANCEL", 1)],
}

_SCALAR_TYPES = {
    "bytes": FieldDescriptor.TYPE_BYTES, "string": FieldDescriptor.TYPE_STRING,
    "uint32": FieldDescriptor.TYPE_UINT32, "uint64": FieldDescriptor.TYPE_UINT64,
    "int32": FieldDescriptor.TYPE_INT32, "bool": FieldDescriptor.TYPE_BOOL,
}


def _field(message: str, field: str) -> FieldDescriptor:
    return messages.CLASSES[message].DESCRIPTOR.fields_by_name[field]


def _roundtrip(msg: Any) -> Any:
    return messages.parse(messages.type_id_of(msg), msg.SerializeToString())


def test_the_table_has_every_v7_message_and_nothing_else_but_the_v5_suspension_layout() -> None:
    assert set(messages.SCHEMA) == {ours for _, ours, _, _ in V7_MESSAGES} | {"SuspensionV5"}
    assert len(V7_MESSAGES) == 51 and sum(len(fields) for *_, fields in V7_MESSAGES) == 179


@pytest.mark.parametrize(("official", "name", "type_id"),
                         [(official, ours, tid) for official, ours, tid, _ in V7_MESSAGES if tid is not None])
def test_framed_messages_have_their_wire_type_ids(official: str, name: str, type_id: int) -> None:
    assert messages.TYPE_IDS[name] == type_id, official
    assert messages.NAMES_BY_ID[type_id] == name
    assert messages.type_id_of(messages.new(name)) == type_id


def test_only_the_framed_messages_have_type_ids() -> None:
    assert set(messages.TYPE_IDS) == {ours for _, ours, tid, _ in V7_MESSAGES if tid is not None}


@pytest.mark.parametrize(("official", "name", "fields"),
                         [(official, ours, fields) for official, ours, _, fields in V7_MESSAGES],
                         ids=[official for official, *_ in V7_MESSAGES])
def test_every_field_matches_the_official_v7_definition(official: str, name: str,
                                                        fields: list[tuple[str, int, str, str]]) -> None:
    desc = messages.CLASSES[name].DESCRIPTOR
    assert sorted(desc.fields_by_name) == sorted(f for f, *_ in fields), f"{official}: fields differ"
    for field, number, kind, label in fields:
        fd = desc.fields_by_name[field]
        where = f"{official}.{field}"
        assert fd.number == number, where
        if kind in _SCALAR_TYPES:
            assert fd.type == _SCALAR_TYPES[kind], where
        elif kind in V7_ENUMS:
            assert fd.type == FieldDescriptor.TYPE_ENUM and fd.enum_type.name == kind, where
        else:
            assert fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.name == kind, where
        assert fd.is_repeated == (label == "repeated"), where
        group = fd.containing_oneof
        if label.startswith("oneof "):
            assert group is not None and group.name == label.removeprefix("oneof "), where
        elif label == "optional":
            assert fd.has_presence and group is not None and group.name == f"_{field}", where  # proto3 optional
        else:
            assert group is None, where


@pytest.mark.parametrize(("enum", "values"), list(V7_ENUMS.items()))
def test_enums_have_the_official_values(enum: str, values: list[tuple[str, int]]) -> None:
    desc = messages.CLASSES["Error"].DESCRIPTOR.file.enum_types_by_name[enum]
    assert [(v.name, v.number) for v in desc.values] == values


def _reference_file_descriptor() -> Any:
    """The table built field by field with protobuf's own descriptor classes (what messages.py did before it
    encoded the bytes itself, to keep descriptor_pb2 out of `import playground`)."""
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name="playground_protocol_v7.proto", package=messages.PACKAGE,
                                             syntax="proto3")
    for enum_name, values in messages.ENUMS.items():
        edp = fdp.enum_type.add(name=enum_name)
        for value_name, number in values:
            edp.value.add(name=value_name, number=number)
    for msg_name, fields in messages.SCHEMA.items():
        mdp = fdp.message_type.add(name=msg_name)
        oneofs: list[str] = []
        for f in fields:
            fd = mdp.field.add(name=f.name, number=f.number, json_name=f.name)
            fd.label = fd.LABEL_REPEATED if f.repeated else fd.LABEL_OPTIONAL
            if f.kind in _SCALAR_TYPES:
                fd.type = _SCALAR_TYPES[f.kind]  # type: ignore[assignment]
            else:
                fd.type = fd.TYPE_ENUM if f.kind in messages.ENUMS else fd.TYPE_MESSAGE
                fd.type_name = f".{messages.PACKAGE}.{f.kind}"
            group = f.oneof or (f"_{f.name}" if f.optional else None)
            if group is not None:
                if group not in oneofs:
                    oneofs.append(group)
                    mdp.oneof_decl.add(name=group)
                fd.oneof_index = oneofs.index(group)
                fd.proto3_optional = f.optional
    return fdp


def test_the_hand_encoded_file_descriptor_is_the_one_protobufs_own_classes_build() -> None:
    from google.protobuf import descriptor_pb2

    ours = descriptor_pb2.FileDescriptorProto.FromString(messages.file_descriptor())
    assert ours == _reference_file_descriptor()
    assert messages.file_descriptor() == _reference_file_descriptor().SerializeToString()


def test_type_ids_are_unique_and_every_framed_message_has_a_class() -> None:
    assert len(set(messages.TYPE_IDS.values())) == len(messages.TYPE_IDS)
    assert set(messages.TYPE_IDS) <= set(messages.CLASSES)
    assert {v: k for k, v in messages.TYPE_IDS.items()} == messages.NAMES_BY_ID


def test_every_type_id_falls_in_the_range_of_its_kind() -> None:
    for name, type_id in messages.TYPE_IDS.items():
        if type_id < 0x0400:
            assert not messages.is_command(type_id) and not messages.is_notification(type_id), name
        elif type_id < 0x8000:
            assert messages.is_command(type_id) and not messages.is_notification(type_id), name
        else:
            assert messages.is_notification(type_id) and not messages.is_command(type_id), name


@pytest.mark.parametrize(
    ("type_id", "is_command", "is_notification"),
    [
        (0x03FF, False, False),
        (0x0400, True, False),
        (0x7FFF, True, False),
        (0x8000, False, True),
        (0xFBFF, False, True),
        (0xFC00, True, False),  # custom commands
        (0xFFFF, True, False),
    ],
)
def test_id_range_boundaries_classify_commands_and_notifications(
    type_id: int, is_command: bool, is_notification: bool
) -> None:
    assert messages.is_command(type_id) is is_command
    assert messages.is_notification(type_id) is is_notification


@pytest.mark.parametrize(
    ("type_id", "label"),
    [
        (0x040D, "Command: Call"),
        (0x0400, "Command: Input"),
        (0x0411, "Command: Run"),
        (0x800E, "Notification: CallInvocationId"),
        (0x800D, "Notification: Call"),
        (0x8011, "Notification: Run"),
        (0x800C, "Notification: Sleep"),
        (0x8002, "Notification: GetLazyState"),
        (0xFBFF, "Notification: Signal"),
        (0x0000, "Start"),
        (0x0005, "ProposeRunCompletion"),
    ],
)
def test_entry_type_labels_follow_sys_journal_spelling(type_id: int, label: str) -> None:
    assert messages.entry_type(type_id) == label


def test_entry_type_of_unknown_ids_falls_back_to_hex() -> None:
    assert messages.entry_type(0x0499) == "Command: 0x499"
    assert messages.entry_type(0x8099) == "Notification: 0x8099"
    assert messages.entry_type(0x0100) == "0x100"


@pytest.mark.parametrize(
    ("message", "field", "group"),
    [
        ("ProposeRunCompletion", "value", "result"),
        ("ProposeRunCompletion", "failure", "result"),
        ("Output", "value", "result"),
        ("Output", "failure", "result"),
        ("CallCompletion", "value", "result"),
        ("CallCompletion", "failure", "result"),
        ("Signal", "idx", "signal_id"),
        ("Signal", "name", "signal_id"),
        ("SendSignal", "void", "result"),
        ("CompletePromise", "completion_value", "completion"),
        ("AttachInvocation", "invocation_id", "target"),
        ("AttachInvocation", "workflow_target", "target"),
    ],
)
def test_oneof_members_belong_to_their_group(message: str, field: str, group: str) -> None:
    oneof = _field(message, field).containing_oneof
    assert oneof is not None and oneof.name == group


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("Call", "idempotency_key"),
        ("OneWayCall", "idempotency_key"),
        ("Error", "related_command_index"),
        ("Error", "related_command_name"),
        ("Error", "related_command_type"),
        ("Error", "next_retry_delay"),
        ("IdempotentRequestTarget", "service_key"),
        ("IdempotentRequestTarget", "scope"),
        ("WorkflowTarget", "scope"),
        ("Start", "scope"),
        ("Start", "limit_key"),
        ("Start", "idempotency_key"),
        ("Call", "scope"),
        ("Call", "limit_key"),
        ("OneWayCall", "scope"),
        ("OneWayCall", "limit_key"),
    ],
)
def test_proto3_optional_fields_track_presence(message: str, field: str) -> None:
    assert _field(message, field).has_presence
    msg = messages.new(message)
    assert not msg.HasField(field)


def test_plain_scalar_fields_have_no_presence() -> None:
    assert not _field("Call", "key").has_presence
    assert not _field("Start", "random_seed").has_presence


def test_start_round_trips_every_field() -> None:
    start = messages.new(
        "Start",
        id=b"\x00\x01\xfe\xff",
        debug_id="inv_abc",
        known_entries=3,
        state_map=[messages.new("StateEntry", key=b"k", value=b'"v"'),
                   messages.new("StateEntry", key=b"empty", value=b"")],
        partial_state=True,
        key="user-1",
        retry_count_since_last_stored_entry=4,
        duration_since_last_stored_entry=12_345,
        random_seed=2**63 + 7,
    )
    back = _roundtrip(start)
    assert back == start
    assert back.id == b"\x00\x01\xfe\xff"
    assert [(e.key, e.value) for e in back.state_map] == [(b"k", b'"v"'), (b"empty", b"")]
    assert back.random_seed == 2**63 + 7
    assert back.partial_state is True


def test_call_round_trip_keeps_idempotency_key_presence() -> None:
    without = messages.new("Call", service_name="Greeter", handler_name="greet", parameter=b'"x"',
                           invocation_id_notification_idx=1, result_completion_id=2)
    with_empty = messages.new("Call", service_name="Greeter", handler_name="greet", idempotency_key="")
    with_key = messages.new("Call", service_name="Greeter", handler_name="greet", idempotency_key="k-1",
                            headers=[messages.new("Header", key="h", value="v")], key="obj")

    assert not _roundtrip(without).HasField("idempotency_key")
    back_empty = _roundtrip(with_empty)
    assert back_empty.HasField("idempotency_key") and back_empty.idempotency_key == ""
    back = _roundtrip(with_key)
    assert back.HasField("idempotency_key") and back.idempotency_key == "k-1"
    assert [(h.key, h.value) for h in back.headers] == [("h", "v")]
    assert back.key == "obj"
    back_without = _roundtrip(without)
    assert (back_without.invocation_id_notification_idx, back_without.result_completion_id) == (1, 2)
    assert back_without.parameter == b'"x"'


def test_v7_start_fields_round_trip_and_an_empty_value_is_still_present() -> None:
    start = messages.new("Start", debug_id="inv_1", scope="tenant-a", limit_key="", idempotency_key="k-1")
    back = _roundtrip(start)
    assert (back.scope, back.idempotency_key) == ("tenant-a", "k-1")
    assert back.HasField("limit_key") and back.limit_key == ""
    assert not any(_roundtrip(messages.new("Start", debug_id="inv_1")).HasField(f)
                   for f in ("scope", "limit_key", "idempotency_key"))


def test_scope_and_limit_key_of_calls_and_sends_encode_to_their_v7_tags() -> None:
    # hand-computed: Call scope = field 7, limit_key = 8; OneWayCall scope = 8, limit_key = 9 (length-delimited)
    assert messages.new("Call", scope="s", limit_key="l").SerializeToString() == \
        bytes([7 << 3 | 2, 1, ord("s"), 8 << 3 | 2, 1, ord("l")])
    assert messages.new("OneWayCall", scope="s", limit_key="l").SerializeToString() == \
        bytes([8 << 3 | 2, 1, ord("s"), 9 << 3 | 2, 1, ord("l")])
    back = _roundtrip(messages.new("OneWayCall", service_name="S", handler_name="h", scope="s"))
    assert back.HasField("scope") and not back.HasField("limit_key")


@pytest.mark.parametrize(("behavior", "number"), [("RETRY", 0), ("PAUSE", 1), ("FAIL", 2)])
def test_error_behavior_round_trips_as_its_enum_number(behavior: str, number: int) -> None:
    back = _roundtrip(messages.new("Error", code=500, behavior=behavior))
    assert back.behavior == number
    assert messages.new("Error", code=500, behavior=number).SerializeToString() == \
        (bytes([1 << 3 | 0, 0xF4, 0x03]) + (bytes([9 << 3 | 0, number]) if number else b""))


def test_error_round_trip_keeps_optional_next_retry_delay() -> None:
    plain = messages.new("Error", code=500, message="ValueError('boom')", stacktrace="tb")
    zero = messages.new("Error", code=500, next_retry_delay=0)
    delayed = messages.new("Error", code=500, next_retry_delay=7000, related_command_index=1,
                           related_command_name="bad", related_command_type=0x0411)

    back_plain = _roundtrip(plain)
    assert not back_plain.HasField("next_retry_delay")
    assert not back_plain.HasField("related_command_index")
    assert (back_plain.code, back_plain.message, back_plain.stacktrace) == (500, "ValueError('boom')", "tb")
    assert _roundtrip(zero).HasField("next_retry_delay")  # an explicit 0 is still present
    back = _roundtrip(delayed)
    assert back.next_retry_delay == 7000
    assert (back.related_command_index, back.related_command_name, back.related_command_type) == (1, "bad", 0x0411)


def test_propose_run_completion_oneof_holds_value_or_failure() -> None:
    ok = messages.new("ProposeRunCompletion", result_completion_id=3, value=b'"ok"')
    failed = messages.new("ProposeRunCompletion", result_completion_id=4,
                          failure=messages.new("Failure", code=418, message="teapot",
                                               metadata=[messages.new("FailureMetadata", key="a", value="b")]))
    empty_value = messages.new("ProposeRunCompletion", result_completion_id=5, value=b"")

    back_ok = _roundtrip(ok)
    assert back_ok.WhichOneof("result") == "value" and back_ok.value == b'"ok"'
    back_failed = _roundtrip(failed)
    assert back_failed.WhichOneof("result") == "failure"
    assert (back_failed.failure.code, back_failed.failure.message) == (418, "teapot")
    assert [(m.key, m.value) for m in back_failed.failure.metadata] == [("a", "b")]
    assert _roundtrip(empty_value).WhichOneof("result") == "value"  # an empty value is not "no result"

    switched = messages.new("ProposeRunCompletion", value=b"1")
    switched.failure.code = 500
    assert switched.WhichOneof("result") == "failure" and switched.value == b""


def test_signal_round_trip_with_index_or_name() -> None:
    cancel = messages.new("Signal", idx=messages.CANCEL_SIGNAL, void=messages.new("Void"))
    # built through the class as well as through messages.new (which accepts a field called `name`)
    named = messages.CLASSES["Signal"](name="approved", value=messages.new("Value", content=b"true"))
    back_cancel = _roundtrip(cancel)
    assert back_cancel.WhichOneof("signal_id") == "idx" and back_cancel.idx == 1
    assert back_cancel.WhichOneof("result") == "void"
    back_named = _roundtrip(named)
    assert back_named.WhichOneof("signal_id") == "name" and back_named.name == "approved"
    assert back_named.value.content == b"true"


def test_call_fields_encode_to_the_documented_wire_tags() -> None:
    # Independent of the descriptor: hand-computed protobuf tags, (field_number << 3) | wire_type.
    payload = messages.new("Call", invocation_id_notification_idx=1, result_completion_id=2).SerializeToString()
    assert payload == bytes([10 << 3 | 0, 1, 11 << 3 | 0, 2])
    payload = messages.new("OneWayCall", invoke_time=5).SerializeToString()
    assert payload == bytes([4 << 3 | 0, 5])
    payload = messages.new("Start", random_seed=9).SerializeToString()
    assert payload == bytes([9 << 3 | 0, 9])
    payload = messages.new("CallInvocationIdCompletion", completion_id=1, invocation_id="i").SerializeToString()
    assert payload == bytes([1 << 3 | 0, 1, 16 << 3 | 2, 1, 1, ord("i")])


def test_parsing_keeps_unknown_fields_from_newer_protocol_versions() -> None:
    # a field no version up to V7 defines (Error field 15) must not break parsing and must survive re-encoding
    base = messages.new("Error", code=500).SerializeToString()
    payload = base + bytes([15 << 3 | 0, 2])
    msg = messages.parse(messages.TYPE_IDS["Error"], payload)
    assert msg.code == 500
    assert msg.SerializeToString() == payload


def test_parse_of_an_unknown_type_id_raises_key_error() -> None:
    with pytest.raises(KeyError):
        messages.parse(0x0499, b"")


def test_new_builds_nested_messages_by_short_name() -> None:
    out = messages.new("Output", value=messages.new("Value", content=b"42"))
    assert out.WhichOneof("result") == "value"
    assert out.value.content == b"42"
    assert out.DESCRIPTOR.full_name == f"{messages.PACKAGE}.Output"


@pytest.mark.parametrize("message", ["Run", "Call", "Signal"])
def test_new_accepts_a_field_called_name(message: str) -> None:
    msg = messages.new(message, name="work")
    assert msg.name == "work"

