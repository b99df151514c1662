"""The frame codec: 8-byte big-endian header (u16 type, u16 flags, u32 length) + protobuf payload."""

from __future__ import annotations

import struct

import pytest

from playground.protocol import framing, messages


def _frames() -> list[bytes]:
    return [
        framing.encode(messages.new("Start", id=b"\x01" * 16, debug_id="inv_x", known_entries=1)),
        framing.encode(messages.new("Input", value=messages.new("Value", content=b'"hello"'))),
        framing.encode(messages.new("End")),  # empty payload
        framing.encode(messages.new("ProposeRunCompletion", result_completion_id=1, value=b'"v"'),
                       flags=framing.REQUESTED_ACK),
        framing.encode(messages.new("Signal", idx=17, value=messages.new("Value", content=b"x" * 300))),
    ]


def _decoded(frames: list[bytes]) -> list[tuple[int, int, bytes]]:
    return [(struct.unpack(">H", f[:2])[0], struct.unpack(">H", f[2:4])[0], f[8:]) for f in frames]


def test_header_is_big_endian_type_flags_length() -> None:
    msg = messages.new("Call", service_name="Greeter", handler_name="greet")
    payload = msg.SerializeToString()
    frame = framing.encode(msg)
    assert frame[:8] == struct.pack(">HHI", 0x040D, 0, len(payload))
    assert frame[:2] == b"\x04\x0d"
    assert frame[4:8] == len(payload).to_bytes(4, "big")
    assert frame[8:] == payload
    assert len(frame) == 8 + len(payload)


def test_requested_ack_flag_is_bit_47_of_the_header() -> None:
    assert framing.REQUESTED_ACK == 0x8000
    frame = framing.encode(messages.new("ProposeRunCompletion", result_completion_id=1, value=b"1"),
                           flags=framing.REQUESTED_ACK)
    header = int.from_bytes(frame[:8], "big")
    assert header >> 48 == 0x0005
    assert (header >> 47) & 1 == 1
    assert (header >> 32) & 0x7FFF == 0  # reserved bits stay zero
    assert header & 0xFFFFFFFF == len(frame) - 8


def test_empty_message_encodes_to_a_bare_header() -> None:
    assert framing.encode(messages.new("End")) == b"\x00\x03\x00\x00\x00\x00\x00\x00"


def test_encode_raw_matches_encode() -> None:
    msg = messages.new("Sleep", wake_up_time=1_700_000_000_000, result_completion_id=2)
    assert framing.encode_raw(0x040C, msg.SerializeToString()) == framing.encode(msg)
    assert framing.encode_raw(0x0005, b"ab", flags=framing.REQUESTED_ACK) == b"\x00\x05\x80\x00\x00\x00\x00\x02ab"


def test_decoder_returns_type_flags_and_payload_of_a_single_frame() -> None:
    msg = messages.new("ProposeRunCompletion", result_completion_id=7, value=b'"r"')
    out = framing.Decoder().feed(framing.encode(msg, flags=framing.REQUESTED_ACK))
    assert len(out) == 1
    type_id, flags, payload = out[0]
    assert (type_id, flags) == (0x0005, framing.REQUESTED_ACK)
    assert messages.parse(type_id, payload) == msg


def test_multiple_frames_in_one_chunk_decode_in_order() -> None:
    frames = _frames()
    decoder = framing.Decoder()
    out = decoder.feed(b"".join(frames))
    assert out == _decoded(frames)
    assert [t for t, _, _ in out] == [0x0000, 0x0400, 0x0003, 0x0005, 0xFBFF]
    assert decoder.pending == 0


def test_frames_split_into_one_byte_chunks_decode_identically() -> None:
    frames = _frames()
    stream = b"".join(frames)
    decoder = framing.Decoder()
    out: list[tuple[int, int, bytes]] = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i:i + 1]))
    assert out == framing.Decoder().feed(stream) == _decoded(frames)
    assert decoder.pending == 0


@pytest.mark.parametrize("chunk_size", [2, 3, 7, 8, 9, 13, 64])
def test_frames_split_at_any_chunk_size_decode_identically(chunk_size: int) -> None:
    stream = b"".join(_frames())
    decoder = framing.Decoder()
    out: list[tuple[int, int, bytes]] = []
    for i in range(0, len(stream), chunk_size):
        out.extend(decoder.feed(stream[i:i + chunk_size]))
    assert out == _decoded(_frames())


def test_pending_counts_bytes_of_a_partial_frame() -> None:
    frame = framing.encode(messages.new("Input", value=messages.new("Value", content=b"0123456789")))
    decoder = framing.Decoder()
    assert decoder.pending == 0
    assert decoder.feed(frame[:5]) == []  # not even a full header
    assert decoder.pending == 5
    assert decoder.feed(frame[5:-1]) == []  # header complete, payload one byte short
    assert decoder.pending == len(frame) - 1
    out = decoder.feed(frame[-1:])
    assert len(out) == 1 and out[0][0] == 0x0400
    assert decoder.pending == 0


def test_complete_frame_followed_by_a_partial_one_yields_the_first_and_keeps_the_rest() -> None:
    first = framing.encode(messages.new("End"))
    second = framing.encode(messages.new("Output", value=messages.new("Value", content=b"1")))
    decoder = framing.Decoder()
    out = decoder.feed(first + second[:10])
    assert [t for t, _, _ in out] == [0x0003]
    assert decoder.pending == 10
    assert [t for t, _, _ in decoder.feed(second[10:])] == [0x0401]
    assert decoder.pending == 0


def test_empty_chunks_are_harmless() -> None:
    decoder = framing.Decoder()
    assert decoder.feed(b"") == []
    frame = framing.encode(messages.new("End"))
    assert decoder.feed(frame[:3]) == []
    assert decoder.feed(b"") == []
    assert decoder.pending == 3
    assert decoder.feed(frame[3:]) == [(0x0003, 0, b"")]


def test_large_payload_uses_the_full_u32_length() -> None:
    content = bytes(range(256)) * 400  # 102400 bytes: larger than a u16 could describe
    msg = messages.new("Output", value=messages.new("Value", content=content))
    frame = framing.encode(msg)
    assert struct.unpack(">I", frame[4:8])[0] == len(frame) - 8 > 0xFFFF
    decoder = framing.Decoder()
    out = decoder.feed(frame[:70_000]) + decoder.feed(frame[70_000:])
    assert len(out) == 1
    assert messages.parse(out[0][0], out[0][2]).value.content == content
