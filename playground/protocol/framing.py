"""Frame codec: an 8-byte big-endian header (u16 type, u16 flags, u32 length) before each protobuf payload."""

from __future__ import annotations

import struct
from typing import Any

from . import messages

_HEADER = struct.Struct(">HHI")
REQUESTED_ACK = 0x8000


def encode(msg: Any, flags: int = 0) -> bytes:
    payload = msg.SerializeToString()
    return _HEADER.pack(messages.type_id_of(msg), flags, len(payload)) + payload


def encode_raw(type_id: int, payload: bytes, flags: int = 0) -> bytes:
    return _HEADER.pack(type_id, flags, len(payload)) + payload


class Decoder:
    """Incremental decoder: frames may be split across body chunks or share one."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[tuple[int, int, bytes]]:
        """The frames completed by `chunk`. A chunk that holds whole frames (the SDK writes one chunk per
        message) is sliced as it is; only an incomplete tail is kept, and joined with the next chunk."""
        data = self._buf + chunk if self._buf else chunk
        out: list[tuple[int, int, bytes]] = []
        size, end_of_data, i = _HEADER.size, len(data), 0
        while end_of_data - i >= size:
            type_id, flags, length = _HEADER.unpack_from(data, i)
            end = i + size + length
            if end > end_of_data:
                break
            out.append((type_id, flags, data[i + size:end]))
            i = end
        self._buf = bytes(data[i:]) if i < end_of_data else b""
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete trailing frame."""
        return len(self._buf)
