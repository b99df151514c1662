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

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, int, bytes]]:
        self._buf += chunk
        out: list[tuple[int, int, bytes]] = []
        while len(self._buf) >= _HEADER.size:
            type_id, flags, length = _HEADER.unpack_from(self._buf)
            end = _HEADER.size + length
            if len(self._buf) < end:
                break
            out.append((type_id, flags, bytes(self._buf[_HEADER.size:end])))
            del self._buf[:end]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete trailing frame."""
        return len(self._buf)
