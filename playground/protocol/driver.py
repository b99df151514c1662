"""Drive one invocation attempt of the SDK's ASGI app in-process, playing the Restate server's side.

Pitfalls handled here (see the service-protocol notes): the request body must be closed after the SDK's
terminal message or the app never returns; the 200 head says nothing about success; an exception in the
app task (e.g. an unsupported protocol version) must surface instead of hanging; an early disconnect ends
the attempt without a terminal message; run proposals can arrive after the body is closed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import framing, messages
from .fifo import Fifo

PROTOCOL_VERSION = 7
CONTENT_TYPE = f"application/vnd.restate.invocation.v{PROTOCOL_VERSION}"  # the version the runtime prefers


@functools.lru_cache(maxsize=16)
def content_type_for(version: int) -> str:
    return f"application/vnd.restate.invocation.v{version}"


@functools.lru_cache(maxsize=16)
def _version_of(content_type: str) -> int:
    try:
        return int(content_type.rsplit(".v", 1)[1])
    except (IndexError, ValueError):
        return PROTOCOL_VERSION

# Set inside each attempt's app task (and so inherited by every task the SDK spawns for it).
current_attempt: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("playground_attempt", default=None)

AsgiApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class _Pipe:
    """A single-consumer FIFO; much cheaper than asyncio.Queue on the per-message hot path."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items = Fifo()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        self._items.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


def make_scope(service: str, handler: str, content_type: str = CONTENT_TYPE) -> dict:
    """The ASGI scope of an invocation request; the headers a real Restate server sends are added per attempt."""
    path = f"/invoke/{service}/{handler}"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode()), (b"accept", content_type.encode())],
    }


class Received:
    """One message from the SDK: its frame type id, header flags and protobuf message. The message is
    parsed when first asked for: the type id alone settles most frames (End, acks), and a frame the
    runtime ignores is never parsed."""

    __slots__ = ("_msg", "_payload", "_version", "flags", "type_id")

    def __init__(self, type_id: int, flags: int, msg: Any = None, payload: bytes | None = None,
                 version: int = PROTOCOL_VERSION) -> None:
        self.type_id, self.flags = type_id, flags
        self._msg, self._payload, self._version = msg, payload, version

    @property
    def msg(self) -> Any:
        if self._msg is None and self._payload is not None:
            self._msg = messages.parse(self.type_id, self._payload, self._version)
        return self._msg

    def frame(self) -> bytes:
        """The message as a frame (flags cleared), from the SDK's own bytes when it sent them: a journal
        stores this, so the message need not be parsed to be stored, nor encoded again to be replayed."""
        payload = self._payload
        if payload is None:
            return framing.encode(self._msg)
        return framing.encode_raw(self.type_id, payload)

    @property
    def name(self) -> str:
        return messages.NAMES_BY_ID.get(self.type_id, hex(self.type_id))

    def __repr__(self) -> str:
        return f"Received({self.name}, flags={self.flags:#x}, msg={self.msg!r})"


@dataclass(slots=True)
class AttemptEnded:
    """The app finished the response. `error` is set when the app task raised or was cancelled; an attempt that
    ended without a terminal message (End, Suspension, Error) failed even when `error` is None."""

    status: int | None
    error: BaseException | None = None
    # the response head's headers as the app sent them (bytes pairs); `headers` decodes them when asked
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)
    # cancelled from outside, not by abort(): its event loop is shutting down (the script or kernel ends)
    lost: bool = False
    # a BaseException that escaped handler code (KeyboardInterrupt, SystemExit, a stray CancelledError)
    escaped: BaseException | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.raw_headers}


class Attempt:
    """One HTTP/2-style bidi stream to the app: set `on_message` and `on_end`, `start()`, then write with
    `notify()`; each message the SDK sends, and the attempt's end, arrive through those callbacks."""

    # one per attempt in flight, so slots: smaller (no instance dict) and a little faster to fill
    __slots__ = (
        "__weakref__",
        "_aborted",
        "_app",
        "_batch",
        "_decoder",
        "_done_waiter",
        "_inbox",
        "_input_closed",
        "_lost",
        "_resp_headers",
        "_response_done",
        "_scope",
        "_status",
        "_task",
        "before_read",
        "delays",
        "ended",
        "escaped",
        "on_end",
        "on_message",
        "on_waiting",
        "runs_started",
        "sdk_waiting",
        "version",
    )

    def __init__(self, app: AsgiApp, service: str, handler: str, headers: list[tuple[str, str]] | None = None,
                 content_type: str = CONTENT_TYPE, scope: dict | None = None) -> None:
        self._app = app
        # the negotiated version decides how some frames are laid out (see messages.parse)
        self.version = _version_of(content_type)
        base = scope if scope is not None else make_scope(service, handler, content_type)
        self._scope = {**base, "headers": base["headers"] + [(k.encode(), v.encode()) for k, v in headers or ()]}
        self._inbox = _Pipe()
        # frames written with notify() that the app has not taken yet: they go to it as one chunk (see notify)
        self._batch: list[bytes] | None = None
        self._decoder = framing.Decoder()
        self._input_closed = False
        # the response is complete (or the connection dropped); _receive holds the stream open until then
        self._response_done = False
        self._done_waiter: asyncio.Future[None] | None = None
        self._status: int | None = None
        self._resp_headers: list[tuple[bytes, bytes]] = []
        self._task: asyncio.Task[None] | None = None
        self._aborted = False
        self._lost = False
        self.ended: AttemptEnded | None = None
        # set by sdk_hooks (or _run_app) when a BaseException escaped handler code; see AttemptEnded.escaped
        self.escaped: BaseException | None = None
        # (kind, millis) of sleeps and sends the SDK was asked for, in command order (see sdk_hooks)
        self.delays = Fifo()
        # True while the SDK waits for input from us (its VM said "wait for external progress"; see sdk_hooks)
        self.sdk_waiting = False
        # ctx.run closures the SDK has begun to execute in this attempt (counted by sdk_hooks)
        self.runs_started = 0
        self.on_waiting: Callable[[], None] | None = None
        # each SDK message (and the end) goes to these callbacks synchronously, as the SDK sends it; start()
        # needs both (they are dropped once the attempt has ended)
        self.on_message: Callable[[Received], None] | None = None
        self.on_end: Callable[[AttemptEnded], None] | None = None
        # called before the app reads what was sent to it (the runtime's durable store commits there)
        self.before_read: Callable[[], None] | None = None

    # --- the ASGI callables given to the app ---
    async def _receive(self) -> dict:
        try:
            if not self._inbox and self._input_closed:
                # After the body ended, hold the stream open until the response is complete.
                if not self._response_done:
                    self._done_waiter = asyncio.get_running_loop().create_future()
                    await self._done_waiter
                return {"type": "http.disconnect"}
            item = await self._inbox.get()
            if self.before_read is not None:
                self.before_read()  # the runtime's store writes what this tells the SDK first
                if self._aborted:  # (it could not: the runtime stopped, and this attempt with it)
                    return {"type": "http.disconnect"}
            if type(item) is list:  # a batch of notify() frames
                if item is self._batch:
                    self._batch = None
                return {"type": "http.request", "body": b"".join(item), "more_body": True}
            return item
        except asyncio.CancelledError:
            # The SDK reads in a task of its own. It cancels that task itself when the app ends (also when
            # handler code raised a BaseException, before any terminal message); otherwise only the loop
            # shutting down cancels it, and then the app task is being cancelled too. In that case don't
            # leave the handler waiting for a body end.
            task = self._task
            if not self._response_done and task is not None and task.cancelling():
                self._lost = not self._aborted
                self.abort()
            raise

    async def _send(self, event: dict) -> None:
        kind = event["type"]
        if kind == "http.response.start":
            self._status = event["status"]
            self._resp_headers = event.get("headers", [])
        elif kind == "http.response.body":
            version = self.version
            names = messages.NAMES_BY_ID
            for type_id, flags, payload in self._decoder.feed(event.get("body", b"")):
                if type_id not in names:
                    raise KeyError(type_id)  # as parsing it would: the app's send fails, and so the attempt
                on_message = self.on_message
                if on_message is not None:  # None: the attempt ended, or its owner detached it
                    on_message(Received(type_id, flags, None, payload, version))
            if not event.get("more_body", False):
                self._set_response_done()

    # --- the server side ---
    def start(self, start: Any, journal: list[bytes]) -> None:
        """Send Start and the stored journal frames (already encoded), then let the app run."""
        if self.on_message is None or self.on_end is None:
            raise ValueError("set the attempt's on_message and on_end before start(): the SDK's messages and "
                             "the attempt's end arrive through them")
        start.known_entries = len(journal)
        body = framing.encode(start) + b"".join(journal)
        self._inbox.put({"type": "http.request", "body": body, "more_body": True})
        self._task = asyncio.get_running_loop().create_task(self._run_app())
        self._task.add_done_callback(self._app_task_done)

    def _app_task_done(self, task: asyncio.Task[None]) -> None:
        # Only for a task cancelled before its first step (_run_app removes this callback when it starts)
        if self.ended is None:
            self._report_end(ConnectionAbortedError("attempt aborted before it started"))

    async def _run_app(self) -> None:
        error: BaseException | None = None
        if self._task is not None:
            self._task.remove_done_callback(self._app_task_done)  # _run_app reports the end itself
        current_attempt.set(self)
        try:
            await self._app(self._scope, self._receive, self._send)
        except asyncio.CancelledError:
            error = ConnectionAbortedError("attempt aborted")
            self._lost = self._lost or not self._aborted
        except (KeyboardInterrupt, SystemExit) as exc:  # raised outside handler code (sdk_hooks sees the rest)
            error = exc
            self.escaped = self.escaped or exc
        except BaseException as exc:
            error = exc
        # The task's context holds this attempt; clear it so attempt -> task -> context -> attempt is no
        # cycle and the attempt is freed by reference counting, not by the (costly) cyclic collector.
        current_attempt.set(None)
        self._report_end(error)

    def _set_response_done(self) -> None:
        self._response_done = True
        w = self._done_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _report_end(self, error: BaseException | None) -> None:
        self._set_response_done()
        self.ended = AttemptEnded(self._status, error, self._resp_headers, self._lost, self.escaped)
        on_end = self.on_end
        # drop the callbacks: they usually close over an object that refers back to this attempt
        self.on_message = self.on_end = self.on_waiting = None
        if on_end is not None:
            on_end(self.ended)

    def notify(self, msg: Any, flags: int = 0) -> bool:
        """Write a message into the open request body. Returns False once the input is closed.

        Messages written before the app reads again travel as one chunk, as bytes written to a socket would:
        the SDK runs its whole progress loop (which walks every future it awaits) once per chunk, so
        completions of a fan-out arriving one chunk each would cost it quadratic time.
        """
        if self._input_closed:
            return False
        frame = framing.encode(msg, flags)
        if self._batch is not None:
            self._batch.append(frame)
        else:
            self._batch = [frame]
            self._inbox.put(self._batch)
        self.sdk_waiting = False
        return True

    def set_sdk_waiting(self, waiting: bool) -> None:
        self.sdk_waiting = waiting
        if waiting and self.on_waiting is not None:
            self.on_waiting()

    def close_input(self) -> None:
        if not self._input_closed:
            self._input_closed = True
            self._batch = None  # nothing may join a chunk queued before the end of the body
            self._inbox.put({"type": "http.request", "body": b"", "more_body": False})

    @property
    def input_closed(self) -> bool:
        return self._input_closed

    def fail(self, exc: BaseException) -> None:
        """A BaseException escaped code the SDK runs beside the handler (an async ctx.run closure): end the
        attempt as failed, with `exc` as what escaped."""
        self.escaped = self.escaped or exc
        self.abort()

    def abort(self) -> None:
        """Drop the connection, as a crashed deployment would.

        The SDK swallows the first CancelledError of a handler and then waits for the request body to
        close; if its receive task was cancelled too (loop shutdown), nothing would ever close it. So keep
        cancelling the app task, a few times, until it has finished.
        """
        self._aborted = True
        self._input_closed = True
        self._batch = None
        self._inbox.put({"type": "http.disconnect"})
        self._set_response_done()
        task = self._task
        if task is None or task.done():
            return
        loop = task.get_loop()

        def kick(tries: int) -> None:
            if not task.done() and tries > 0:
                task.cancel()
                loop.call_soon(kick, tries - 1)

        kick(50)
