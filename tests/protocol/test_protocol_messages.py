"""The V7 message table: type ids, entry labels, field numbers and round trips."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

from playground.protocol import messages

# (message, type id) facts from the service protocol (protocol.proto comments "Type: 0x....").
KNOWN_TYPE_IDS: list[tuple[str, int]] = [
    ("Start", 0x0000),
    ("Suspension", 0x0001),
    ("Error", 0x0002),
    ("End", 0x0003),
    ("ProposeRunCompletion", 0x0005),
    ("AwaitingOn", 0x0006),
    ("ProposeRunCompletionAck", 0x0007),
    ("Input", 0x0400),
    ("Output", 0x0401),
    ("Sleep", 0x040C),
    ("Call", 0x040D),
    ("OneWayCall", 0x040E),
    ("SendSignal", 0x0410),
    ("Run", 0x0411),
    ("CompleteAwakeable", 0x0414),
    ("SleepCompletion", 0x800C),
    ("CallCompletion", 0x800D),
    ("CallInvocationIdCompletion", 0x800E),
    ("RunCompletion", 0x8011),
    ("Signal", 0xFBFF),
]

# (message, field, number) facts from protocol.proto, spot-checked against the compiled descriptors.
KNOWN_FIELD_NUMBERS: list[tuple[str, str, int]] = [
    ("Start", "id", 1),
    ("Start", "debug_id", 2),
    ("Start", "known_entries", 3),
    ("Start", "state_map", 4),
    ("Start", "partial_state", 5),
    ("Start", "key", 6),
    ("Start", "retry_count_since_last_stored_entry", 7),
    ("Start", "duration_since_last_stored_entry", 8),
    ("Start", "random_seed", 9),
    ("Suspension", "awaiting_on", 4),
    ("Error", "code", 1),
    ("Error", "message", 2),
    ("Error", "stacktrace", 3),
    ("Error", "related_command_index", 4),
    ("Error", "related_command_name", 5),
    ("Error", "related_command_type", 6),
    ("Error", "next_retry_delay", 8),
    ("ProposeRunCompletion", "result_completion_id", 1),
    ("ProposeRunCompletion", "value", 14),
    ("ProposeRunCompletion", "failure", 15),
    ("AwaitingOn", "awaiting_on", 1),
    ("AwaitingOn", "executing_side_effects", 2),
    ("ProposeRunCompletionAck", "completion_id", 1),
    ("Input", "headers", 1),
    ("Input", "value", 14),
    ("Output", "value", 14),
    ("Output", "failure", 15),
    ("GetEagerState", "void", 13),
    ("GetEagerState", "value", 14),
    ("SetState", "value", 3),
    ("CompletePromise", "completion_value", 2),
    ("CompletePromise", "completion_failure", 3),
    ("Sleep", "wake_up_time", 1),
    ("Sleep", "result_completion_id", 11),
    ("Call", "service_name", 1),
    ("Call", "handler_name", 2),
    ("Call", "parameter", 3),
    ("Call", "headers", 4),
    ("Call", "key", 5),
    ("Call", "idempotency_key", 6),
    ("Call", "invocation_id_notification_idx", 10),
    ("Call", "result_completion_id", 11),
    ("Call", "name", 12),
    ("OneWayCall", "invoke_time", 4),
    ("OneWayCall", "headers", 5),
    ("OneWayCall", "key", 6),
    ("OneWayCall", "idempotency_key", 7),
    ("OneWayCall", "invocation_id_notification_idx", 10),
    ("SendSignal", "target_invocation_id", 1),
    ("SendSignal", "idx", 2),
    ("SendSignal", "entry_name", 12),
    ("Run", "result_completion_id", 11),
    ("Run", "name", 12),
    ("CompleteAwakeable", "awakeable_id", 1),
    ("CompleteAwakeable", "value", 2),
    ("CompleteAwakeable", "failure", 3),
    ("CallInvocationIdCompletion", "completion_id", 1),
    ("CallInvocationIdCompletion", "invocation_id", 16),
    ("CallCompletion", "value", 5),
    ("CallCompletion", "failure", 6),
    ("GetLazyStateKeysCompletion", "state_keys", 17),
    ("SleepCompletion", "void", 4),
    ("Signal", "idx", 2),
    ("Signal", "name", 3),
    ("Signal", "void", 4),
    ("Signal", "value", 5),
    ("Signal", "failure", 6),
    ("Future", "waiting_completions", 1),
    ("Future", "waiting_signals", 2),
    ("Future", "waiting_named_signals", 3),
    ("Future", "nested_futures", 4),
    ("Future", "combinator_type", 5),
    ("Failure", "metadata", 3),
]


def _field(message: str, field: str) -> FieldDescriptor:
    return messages.CLASSES[message].DESCRIPTOR.fields_by_name[field]


def _roundtrip(msg: Any) -> Any:
    return messages.parse(messages.type_id_of(msg), msg.SerializeToString())


@pytest.mark.parametrize(("name", "type_id"), KNOWN_TYPE_IDS)
def test_known_messages_have_their_wire_type_ids(name: str, type_id: int) -> None:
    assert messages.TYPE_IDS[name] == type_id
    assert messages.NAMES_BY_ID[type_id] == name
    assert messages.type_id_of(messages.new(name)) == type_id


def test_type_ids_are_unique_and_every_framed_message_has_a_class() -> None:
    assert len(set(messages.TYPE_IDS.values())) == len(messages.TYPE_IDS)
    assert set(messages.TYPE_IDS) <= set(messages.CLASSES)
    assert messages.NAMES_BY_ID == {v: k for k, v in messages.TYPE_IDS.items()}


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


@pytest.mark.parametrize(("message", "field", "number"), KNOWN_FIELD_NUMBERS)
def test_descriptor_field_numbers_match_the_service_protocol(message: str, field: str, number: int) -> None:
    assert _field(message, field).number == number


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
    # Error.behavior (field 9, V7+) is not in our table; it must not break parsing and must survive re-encoding.
    base = messages.new("Error", code=500).SerializeToString()
    payload = base + bytes([9 << 3 | 0, 2])
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
