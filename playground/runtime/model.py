"""The runtime's records: targets, journal entries and invocations, in Restate's vocabulary."""

from __future__ import annotations

import asyncio
import reprlib
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import restate

from .. import views
from ..protocol import framing, messages
from ..protocol.deployment import Deployment, HandlerInfo, ServiceInfo
from ..protocol.driver import Attempt


@dataclass(frozen=True, slots=True)
class Target:
    service: str
    handler: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.service}/{self.key}/{self.handler}" if self.key is not None else f"{self.service}/{self.handler}"


NO_DUE = -(2**63)  # a journal entry's due time when it has none, as packed journals and stored heads hold it
_HEADER_BYTES = 8  # a frame's header (u16 type, u16 flags, u32 length; see protocol/framing.py)


class JournalEntry:
    """One journal entry. An entry rebuilt from a completed invocation's packed journal (see PackedJournal),
    and a command stored as the SDK sent it, start with the encoded frame only: the message is decoded when
    first read (an eager-state read never is), and the frame is replayed as it is."""

    __slots__ = ("_frame", "_msg", "appended_at", "due_ms", "seen_by_attempt", "type_id")

    def __init__(self, type_id: int, msg: Any, appended_at: int, _frame: bytes | None = None,
                 due_ms: int | None = None, seen_by_attempt: int = 0) -> None:
        self.type_id = type_id
        self._msg = msg
        self.appended_at = appended_at  # virtual ms since epoch
        self._frame = _frame
        # Sleep: the virtual wake-up time; OneWayCall: the virtual time the callee starts. The SDK's own
        # wake_up_time/invoke_time fields hold wall-clock instants, which mean nothing on a virtual clock.
        self.due_ms = due_ms
        self.seen_by_attempt = seen_by_attempt  # the attempt that received this notification live (0: none did)

    @property
    def msg(self) -> Any:
        msg = self._msg
        if msg is None:  # rebuilt from a packed journal (the entry itself lives only while that journal is read)
            frame = self._frame
            assert frame is not None
            msg = self._msg = messages.parse(self.type_id, frame[_HEADER_BYTES:])
        return msg

    def frame(self) -> bytes:
        """The encoded frame, made once: every replay sends the same bytes."""
        if self._frame is None:
            self._frame = framing.encode_raw(self.type_id, self._msg.SerializeToString())
        return self._frame

    @property
    def entry_type(self) -> str:
        return messages.entry_type(self.type_id)

    @property
    def name(self) -> str:
        field_name = "entry_name" if self.type_id == messages.TYPE_IDS["SendSignal"] else "name"
        return getattr(self.msg, field_name, "")

    def _key(self) -> tuple[Any, ...]:
        return (self.type_id, self.msg, self.appended_at, self.due_ms, self.seen_by_attempt)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, JournalEntry) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value (as the dataclass it was)

    def __repr__(self) -> str:
        return (f"JournalEntry(type_id={self.type_id!r}, msg={self.msg!r}, appended_at={self.appended_at!r}, "
                f"due_ms={self.due_ms!r}, seen_by_attempt={self.seen_by_attempt!r})")


class PackedJournal:
    """A completed invocation's journal in one bytes object, kept until its retention passes (a day by
    default): the entry count, then the entries' type ids, appended_at times, due times and attempts (one
    column each), then their frames.

    A list of entries with their decoded protobuf messages costs some 1.7 KB for a trivial call, and adds
    objects the garbage collector walks on every full collection; the bytes cost a tenth of that, and no
    object the collector looks at. Entries are rebuilt when the journal is read (tables, reprs, the store),
    their messages decoded when first read; the most recently read journal's entries are kept, so that
    reading it again, or entry by entry, stays cheap."""

    _COUNT = struct.Struct("<I")
    _FRAME = struct.Struct(">HHI")  # a frame's header: type id, flags, payload length (protocol/framing.py)
    _layouts: ClassVar[dict[int, struct.Struct]] = {}
    _last: ClassVar[tuple[bytes, list[JournalEntry]] | None] = None

    @classmethod
    def _layout(cls, n: int) -> struct.Struct:
        layout = cls._layouts.get(n)
        if layout is None:
            layout = struct.Struct(f"<I{n}H{n}q{n}q{n}I")
            if n <= 64:  # (the sizes of most journals; a longer one builds its layout each time)
                cls._layouts[n] = layout
        return layout

    @classmethod
    def pack(cls, entries: list[JournalEntry]) -> bytes:
        n, no_due = len(entries), NO_DUE
        values = [n] * (1 + 4 * n)  # (one loop filling the columns: this runs once per completed invocation)
        frames = []
        for i, e in enumerate(entries, 1):
            values[i], values[i + n], values[i + 3 * n] = e.type_id, e.appended_at, e.seen_by_attempt
            values[i + 2 * n] = no_due if e.due_ms is None else e.due_ms
            frames.append(e.frame())
        return cls._layout(n).pack(*values) + b"".join(frames)

    @classmethod
    def size(cls, packed: bytes) -> int:
        return cls._COUNT.unpack_from(packed)[0]

    @classmethod
    def type_ids(cls, packed: bytes) -> tuple[int, ...]:
        return struct.unpack_from(f"<{cls.size(packed)}H", packed, cls._COUNT.size)

    @classmethod
    def rows(cls, packed: bytes, start: int) -> list[tuple[int, bytes, int, int | None]]:
        """(type id, frame, appended_at, due_ms) of the entries from `start` on, as a store writes them,
        without rebuilding the entries (a commit appends the last one or two of a journal just packed)."""
        n = cls.size(packed)
        values = cls._layout(n).unpack_from(packed)
        pos, no_due, header, out = cls._layout(n).size, NO_DUE, cls._FRAME, []
        for i in range(n):
            end = pos + header.size + header.unpack_from(packed, pos)[2]
            if i >= start:
                due = values[1 + 2 * n + i]
                out.append((values[1 + i], packed[pos:end], values[1 + n + i], None if due == no_due else due))
            pos = end
        return out

    @classmethod
    def unpack(cls, packed: bytes) -> list[JournalEntry]:
        last = cls._last
        if last is not None and last[0] is packed:
            return last[1]
        n = cls.size(packed)
        layout = cls._layout(n)
        values = layout.unpack_from(packed)
        type_ids, ats, dues, seens = (values[1 + i * n:1 + (i + 1) * n] for i in range(4))
        pos, no_due, header = layout.size, NO_DUE, cls._FRAME
        entries = []
        for type_id, at, due, seen in zip(type_ids, ats, dues, seens, strict=True):
            end = pos + header.size + header.unpack_from(packed, pos)[2]
            entries.append(JournalEntry(type_id, None, at, packed[pos:end], None if due == no_due else due, seen))
            pos = end
        PackedJournal._last = (packed, entries)
        return entries


@dataclass
class Failure:
    code: int
    message: str
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_terminal_error(self) -> restate.TerminalError:
        """The TerminalError a cell sees for this failure, metadata included."""
        return restate.TerminalError(self.message, self.code, metadata=self.metadata or None)


@dataclass
class TransientError:
    """A failed attempt, as sys_journal_events records it."""

    attempt: int
    after_entry: int
    at_ms: int
    code: int
    message: str
    stacktrace: str = ""
    related_command: str | None = None  # a description for people, e.g. "Command: Run 'charge' (command 1)"
    # the SDK's related command as Restate's sys_invocation shows it (last_failure_related_command_*)
    related_index: int | None = None
    related_name: str | None = None
    related_type: str | None = None


@dataclass
class SendHandle:
    """What a one-way send from a cell returns; `status` is 'Accepted' or 'PreviouslyAccepted', as Restate's
    ingress says."""

    invocation_id: str
    status: str = "Accepted"
    execution_time: Any = None

    def __repr__(self) -> str:
        when = f", execution_time={self.execution_time.isoformat()!r}" if self.execution_time else ""
        return f"SendHandle(invocation_id={self.invocation_id!r}, status={self.status!r}{when})"


NO_RUNS: frozenset[int] = frozenset()
DONE: tuple[()] = ()  # what a completed invocation keeps instead of its wait lists


class _NoErrors(list["TransientError"]):
    """The errors of an invocation none of whose attempts failed (most of them): one empty list shared by all,
    which refuses to grow (record_error gives an invocation a list of its own)."""

    __slots__ = ()

    def append(self, item: Any) -> None:
        raise TypeError("NO_ERRORS is shared by every invocation: use Invocation.record_error")

    extend = insert = append  # type: ignore[assignment]

    def copy_shared(self) -> list[TransientError]:
        """Itself: the default of Invocation.errors (a dataclass takes no list as a default)."""
        return self


NO_ERRORS = _NoErrors()
# the unkeyed targets of completed invocations, one object each (its handler's), shared by every invocation of it
_SHARED_TARGETS: dict[tuple[str, str], Target] = {}


@dataclass(eq=False, slots=True)
class Invocation:
    id: str
    target: Target
    service: ServiceInfo
    handler: HandlerInfo
    deployment: Deployment | None  # None: restored from a store, and its service is not registered (yet)
    revision: int
    start_id: bytes
    random_seed: int
    created_at: int
    invoked_by: str = "ingress"  # "ingress" or "service"
    sent: bool = False  # created by a one-way send (from a cell or a handler), not a request-response call
    invoked_by_id: str | None = None
    invoked_by_target: str | None = None
    idempotency_key: str | None = None
    runtime: Any = field(default=None, repr=False)  # the Runtime it belongs to (for display)
    status: str = "pending"
    scheduled_at: int | None = None  # execution time of a delayed send
    inboxed_at: int | None = None
    inbox_seq: int = 0  # its place in its key's inbox (restored inboxes keep their order)
    running_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None  # when its retention ends and it is purged
    # the journal: a list while it may grow, packed into bytes once it completed (see `journal` and settle)
    _journal: list[JournalEntry] | bytes = field(default_factory=list, repr=False)
    result: bytes | Failure | None = None
    completed: bool = False
    attempts: int = 0
    retry_count_since_last_entry: int = 0
    next_retry_at: int | None = None
    last_failure: TransientError | None = None
    errors: list[TransientError] = field(default_factory=NO_ERRORS.copy_shared)  # see record_error
    attempt: Attempt | None = None
    pending_runs: set[int] | frozenset[int] = NO_RUNS  # ctx.run closures executing (Run seen, no proposal yet)
    awaiting: Any = None  # the last Future the SDK said it awaits (AwaitingOn/Suspension), for explanations
    waiting_ids: tuple[set[int], set[int], set[str]] | None = None  # while suspended
    resume_after_attempt: bool = False  # resume() came while the paused attempt was still ending
    killing: bool = False  # rt.kill is ending it (and what it waits on): ignore its SDK and its notifications
    waiters: list[asyncio.Future[None]] | tuple[()] = field(default_factory=list)  # woken on completion
    # invocations waiting for our result: (caller, completion id of their Call or AttachInvocation, kind)
    callers: list[tuple[Invocation, int, str]] | tuple[()] = field(default_factory=list)  # "call"/"attach"

    @property
    def journal(self) -> list[JournalEntry]:
        """Its journal entries (rebuilt from the packed journal once it completed: change nothing then)."""
        j = self._journal
        return j if type(j) is list else PackedJournal.unpack(j)  # type: ignore[arg-type]

    def journal_rows(self, start: int) -> list[tuple[int, bytes, int, int | None]]:
        """(type id, frame, appended_at, due_ms) of its journal entries from `start` on (what a store writes)."""
        j = self._journal
        if type(j) is list:
            return [(e.type_id, e.frame(), e.appended_at, e.due_ms) for e in j[start:]]
        return PackedJournal.rows(j, start)  # type: ignore[arg-type]

    @property
    def journal_size(self) -> int:
        j = self._journal
        return len(j) if type(j) is list else PackedJournal.size(j)  # type: ignore[arg-type]

    def journal_type_ids(self) -> Sequence[int]:
        """Each entry's type id, without rebuilding the entries."""
        j = self._journal
        if type(j) is list:
            return [e.type_id for e in j]
        return PackedJournal.type_ids(j)  # type: ignore[arg-type]

    @reprlib.recursive_repr()
    def __repr__(self) -> str:  # the dataclass's repr, with the journal as a list of entries
        shown = [f"journal={self.journal!r}" if f.name == "_journal" else f"{f.name}={getattr(self, f.name)!r}"
                 for f in fields(self) if f.repr or f.name == "_journal"]
        return f"Invocation({', '.join(shown)})"

    @property
    def lock_key(self) -> tuple[str, str] | None:
        return (self.target.service, self.target.key or "") if self.handler.takes_lock else None

    def record_error(self, err: TransientError) -> None:
        """A failed attempt: kept in `errors`, and shown as its last failure."""
        if self.errors is NO_ERRORS:
            self.errors = []
        self.errors.append(err)
        self.last_failure = err

    def settle(self) -> None:
        """It completed, and is kept until its retention passes (a day by default): keep it compactly, its
        journal packed (see PackedJournal) and its target shared with every other invocation of that handler
        (an unkeyed one: the keyed ones are as many as the keys)."""
        j = self._journal
        if type(j) is list:
            self._journal = PackedJournal.pack(j)
        target = self.target
        if target.key is None:
            self.target = _SHARED_TARGETS.setdefault((target.service, target.handler), target)
        if self.invoked_by_target is not None:  # one string per caller's target too
            self.invoked_by_target = sys.intern(self.invoked_by_target)

    def completion_failure(self) -> str | None:
        return str(self.result) if isinstance(self.result, Failure) else None

    def _repr_html_(self) -> str:
        return views.drawing().journal_html(self.runtime, self)


def status_counts(invocations: Iterable[Invocation]) -> dict[str, int]:
    """How many invocations are in each status, by status name in order."""
    counts: dict[str, int] = {}
    for inv in invocations:
        counts[inv.status] = counts.get(inv.status, 0) + 1
    return dict(sorted(counts.items()))


def journal_heads(invocations: Sequence[Invocation]) -> tuple[bytes, bytes]:
    """Every invocation's journal size (a u32 each) and its entries' type ids (u16s, one journal after the
    other), little-endian, read from the packed journals by slicing: a table over 100,000 invocations reads
    them as two arrays, without rebuilding a journal or a tuple per invocation."""
    js = [inv._journal for inv in invocations]
    sizes = b"".join([j[:4] if type(j) is bytes else struct.pack("<I", len(j)) for j in js])
    counts = struct.unpack(f"<{len(js)}I", sizes)
    ids = b"".join([j[4:4 + 2 * n] if type(j) is bytes else _type_ids(j) for j, n in zip(js, counts, strict=True)])
    return sizes, ids


def _type_ids(entries: Any) -> bytes:
    """The type ids of a journal not packed yet (an invocation still running), as a packed journal holds them."""
    return struct.pack(f"<{len(entries)}H", *[e.type_id for e in entries])
