"""Restate's invocation ids: the text form, the bytes the SDK receives, and how Restate derives them.

An id is `inv_1` + 11 base62 characters for the partition key (u64) + 22 for the invocation uuid (u128), 38
characters in all. Base62 uses the digits 0-9a-zA-Z, fixed width, left-padded with '0'. Each number is
written with its bytes reversed: Restate encodes the integer's big-endian byte image read on a
little-endian machine, so the same id parses the same in the `restate` CLI and here.

Derivation, as restate-server does it (checked against 1.7.12):
- partition key of a keyed target (object, workflow): xxh3-64 (seed 0) of the key's UTF-8 bytes + 0xFF (how
  Rust's `Hash` feeds a string to the hasher);
- partition key of an idempotent call to a service: one of the service's 512 keys,
  xxh3-64(service + 0xFF + "unscoped/service" + 0xFF + bucket as u64 little-endian), the bucket being
  xxh3-64(idempotency key + 0xFF) % 512; a plain service call picks the bucket at random;
- uuid of a workflow run: the first 16 bytes (big-endian) of SHA-256("wf,<service>,<key>");
- uuid of an idempotent call: SHA-256("ik,<service>[,<key>],<handler>,<idempotency key>"), likewise;
- any other uuid is random (a ULID in Restate's source; 1.7.12's show no timestamp): here it is drawn from
  the runtime's seed (SeededIds), with the bucket of a plain service call.
The raw id in the protocol's Start message (and inside awakeable ids) is the partition key and the uuid,
both big-endian: 24 bytes.
"""

from __future__ import annotations

import functools
import hashlib
import random
from typing import NamedTuple

import xxhash

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT = {c: i for i, c in enumerate(ALPHABET)}
PREFIX = "inv_1"
PK_CHARS, UUID_CHARS = 11, 22
ID_LENGTH = len(PREFIX) + PK_CHARS + UUID_CHARS  # 38
RAW_LENGTH = 8 + 16
BUCKETS = 512  # the partition keys a service without key spreads over


class InvocationId(NamedTuple):
    """The two numbers inside an invocation id."""

    partition_key: int
    uuid: int

    def __str__(self) -> str:
        return encode(self.partition_key, self.uuid)

    def to_bytes(self) -> bytes:
        """The 24 raw bytes Restate sends as Start.id (and the SDK puts into awakeable ids)."""
        return self.partition_key.to_bytes(8, "big") + self.uuid.to_bytes(16, "big")


def _swap(n: int, size: int) -> int:
    return int.from_bytes(n.to_bytes(size, "little"), "big")


_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width // 2):  # two digits per division: the fastest plain-Python way
        n, r = divmod(n, 3844)
        out.append(_PAIRS[r])
    if width % 2:
        out.append(ALPHABET[n % 62])
    return "".join(reversed(out))


def _unb62(text: str) -> int:
    n = 0
    for c in text:
        n = n * 62 + _DIGIT[c]
    return n


def encode(partition_key: int, uuid: int) -> str:
    """The id text of a (partition key, uuid) pair."""
    if not 0 <= partition_key < 1 << 64 or not 0 <= uuid < 1 << 128:
        raise ValueError(f"not an invocation id: partition key {partition_key}, uuid {uuid}")
    return _pk_text(partition_key) + _b62(_swap(uuid, 16), UUID_CHARS)


@functools.lru_cache(maxsize=4096)
def _pk_text(partition_key: int) -> str:
    """`inv_1` and the partition key's 11 characters, shared by every id of one object key (cached: hot path)."""
    return PREFIX + _b62(_swap(partition_key, 8), PK_CHARS)


RESOURCE_TYPES = ("inv", "dp", "sub", "prom", "sign", "snap", "mut", "vq")  # the prefixes Restate's ids use


class BadInvocationId(ValueError):
    """Text that is not an invocation id; `reason` is restate-server's word for what is wrong with it."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"bad invocation id '{text}': {reason}")
        self.text, self.reason = text, reason


def parse(text: str) -> InvocationId:
    """The partition key and uuid inside an id. Raises BadInvocationId, checking in restate-server's order and
    with its reasons (bad format, unrecognized resource type, unrecognized codec version, bad length, ...)."""
    if not isinstance(text, str):
        raise TypeError(f"an invocation id is a str, not {type(text).__name__}")
    prefix, sep, rest = text.partition("_")
    reason = ("bad length" if not text else "bad format" if not sep
              else f"unrecognized resource type: {prefix}" if prefix not in RESOURCE_TYPES
              else "bad length" if not rest else "unrecognized codec version" if rest[0] != "1"
              else "id doesn't match the expected type" if prefix != "inv" else None)
    if reason is not None:
        raise BadInvocationId(text, reason)
    data = rest[1:].encode()
    numbers = []
    for start, width, bits in ((0, PK_CHARS, 64), (PK_CHARS, UUID_CHARS, 128)):
        numbers.append(_field(text, data, start, width, bits))
    if len(data) != PK_CHARS + UUID_CHARS:
        raise BadInvocationId(text, "bad length")
    return InvocationId(numbers[0], numbers[1])


def _inside_char(data: bytes, i: int) -> bool:
    return i < len(data) and 0x80 <= data[i] < 0xC0  # a UTF-8 continuation byte


def _field(text: str, data: bytes, start: int, width: int, bits: int) -> int:
    """One fixed-width base62 number of an id (its UTF-8 bytes, as restate-server slices them)."""
    end = start + width
    if len(data) < end or _inside_char(data, start) or _inside_char(data, end):
        raise BadInvocationId(text, "bad length")  # too short, or the slice splits a character
    chunk = data[start:end].decode()
    if any(c not in _DIGIT for c in chunk):
        raise BadInvocationId(text, "base62 decode error")
    n = _unb62(chunk)
    if n >= 1 << bits:
        raise BadInvocationId(text, "base62 decode error")
    return _swap(n, bits // 8)


def from_bytes(raw: bytes) -> InvocationId:
    """The id whose 24 raw bytes (Start.id) these are."""
    if len(raw) != RAW_LENGTH:
        raise ValueError(f"a raw invocation id has {RAW_LENGTH} bytes, not {len(raw)}")
    return InvocationId(int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big"))


# ------------------------------------------------------------------------------------------ partition keys
def _rust_hash(*parts: str | int) -> int:
    """xxh3-64 of what Rust's `Hash` writes for these values: a str as its bytes + 0xFF, an int as u64 LE."""
    buf = bytearray()
    for p in parts:
        buf += p.to_bytes(8, "little") if isinstance(p, int) else p.encode() + b"\xff"
    return xxhash.xxh3_64_intdigest(bytes(buf))


@functools.lru_cache(maxsize=4096)
def key_partition_key(key: str) -> int:
    """The partition key of every invocation of a virtual object or workflow with this key."""
    return _rust_hash(key)


@functools.lru_cache(maxsize=4096)
def service_partition_key(service: str, bucket: int) -> int:
    """One of the `BUCKETS` partition keys invocations of a service (which has no key) are spread over."""
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"bucket must be in [0, {BUCKETS}), not {bucket}")
    return _rust_hash(service, "unscoped/service", bucket)


def idempotent_partition_key(service: str, idempotency_key: str) -> int:
    """The partition key of an idempotent call to a service: the bucket comes from the idempotency key."""
    return service_partition_key(service, _rust_hash(idempotency_key) % BUCKETS)


# ------------------------------------------------------------------------------------------ uuids
def _sha_uuid(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(",".join(parts).encode()).digest()[:16], "big")


def workflow_uuid(service: str, key: str) -> int:
    return _sha_uuid("wf", service, key)


def idempotent_uuid(service: str, key: str | None, handler: str, idempotency_key: str) -> int:
    parts = [service] + ([] if key is None else [key]) + [handler, idempotency_key]
    return _sha_uuid("ik", *parts)


def derived(service: str, key: str | None, handler: str, idempotency_key: str | None,
            workflow_run: bool) -> InvocationId | None:
    """The id Restate gives a workflow run or an idempotent invocation (None for any other: see SeededIds)."""
    if workflow_run:
        assert key is not None
        return InvocationId(key_partition_key(key), workflow_uuid(service, key))
    if idempotency_key is None:
        return None
    pk = key_partition_key(key) if key is not None else idempotent_partition_key(service, idempotency_key)
    return InvocationId(pk, idempotent_uuid(service, key, handler, idempotency_key))


def new_ids(seeded: SeededIds, service: str, handler: str, key: str | None, idem: str | None,
            workflow_run: bool) -> tuple[str, bytes, int]:
    """The id, raw id (Start.id) and random seed of a new invocation: derived as restate-server derives
    them for workflow runs and idempotent invocations, else the next of the seeded ones."""
    if not workflow_run and idem is None:
        return seeded.next(service, key)
    iid = derived(service, key, handler, idem, workflow_run)
    assert iid is not None
    raw = iid.to_bytes()
    return str(iid), raw, int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")


# ------------------------------------------------------------------------------------------ seeded ids
class SeededIds:
    """The ids of plain invocations, from a seed. Each id draws, in a fixed order, 128 random bits (the uuid,
    taken as its base62 image so the hot path skips a byte swap), the SDK's random seed and the bucket of a
    service's partition key; so the n-th id is the same however a runtime got there, and a restore that
    skips the `drawn` ones continues the sequence. Ids are drawn in batches: the base62 work runs in one
    warm loop, several times cheaper per id than between two invocations (see the README's benchmarks)."""

    BATCH = 32

    def __init__(self, seed: int, drawn: int = 0) -> None:
        self._rng = random.Random(seed)
        for _ in range(drawn):
            self._draw()
        self.drawn = drawn
        self._batch: list[tuple[int, str, bytes, int]] = []  # (bucket, uuid text, uuid bytes, seed), next last

    def _draw(self) -> tuple[int, int, int]:
        image, seed = self._rng.getrandbits(128), self._rng.getrandbits(64)
        return image, seed, self._rng.getrandbits(9)

    def next(self, service: str, key: str | None) -> tuple[str, bytes, int]:
        """(id text, 24 raw bytes, SDK random seed) of the next plain invocation of `service` (keyed: `key`)."""
        if not self._batch:
            drawn = [self._draw() for _ in range(self.BATCH)]
            self._batch = [(bucket, _b62(image, UUID_CHARS), image.to_bytes(16, "little"), seed)
                           for image, seed, bucket in reversed(drawn)]
        bucket, uuid_text, uuid_raw, seed = self._batch.pop()
        self.drawn += 1
        pk_text, pk_raw = _key_pk(key) if key is not None else _bucket_pk(service, bucket)
        return pk_text + uuid_text, pk_raw + uuid_raw, seed


@functools.lru_cache(maxsize=4096)
def _key_pk(key: str) -> tuple[str, bytes]:
    pk = key_partition_key(key)
    return _pk_text(pk), pk.to_bytes(8, "big")


@functools.lru_cache(maxsize=4096)
def _bucket_pk(service: str, bucket: int) -> tuple[str, bytes]:
    pk = service_partition_key(service, bucket)
    return _pk_text(pk), pk.to_bytes(8, "big")
