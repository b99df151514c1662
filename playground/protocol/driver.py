"""Drive one invocation attempt of the SDK's ASGI app in-process, playing the Restate server's side.

Pitfalls handled here (see the service-protocol notes): the request body must be closed after the SDK's
terminal message or the app never returns; the 200 head says nothing about success; an exception in the
app task (e.g. an unsupported protocol version) must surface instead of hanging; an early disconnect ends
the attempt without a terminal message; run proposals can arrive after the body is closed.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import framing, messages

PROTOCOL_VERSION = 7
CONTENT_TYPE = f"application/vnd.restate.invocation.v{PROTOCOL_VERSION}"  # the version the runtime prefers


def content_type_for(version: int) -> str:
    return f"application/vnd.restate.invocation.v{version}"


def _version_of(content_type: str) -> int:
    try:
        return int(content_type.rsplit(".v", 1)[1])
    except (IndexError, ValueError):
        return PROTOCOL_VERSION

# Set inside each attempt's app task (and so inherited by every task the SDK spawns for it).
current_attempt: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("playground_attempt", default=None)

AsgiApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class Fifo:
    """A first-in first-out queue on a list: 100 bytes where an empty deque costs over 600 (an attempt has
    several, and thousands of attempts may be in flight)."""

    __slots__ = ("_head", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._head = 0

    def append(self, item: Any) -> None:
        self._items.append(item)

    def popleft(self) -> Any:
        items, head = self._items, self._head
        if head >= len(items):
            raise IndexError("pop from an empty Fifo")
        item = items[head]
        if head + 1 == len(items):
            items.clear()
            self._head = 0
        else:
            items[head] = None
            self._head = head + 1
        return item

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._items[self._head + i]

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __bool__(self) -> bool:
        return len(self._items) > self._head


class _Flag:
    """A flag set once, and awaited: an asyncio.Event without its deque of waiters (a future, made when first
    awaited)."""

    __slots__ = ("_fut", "_set")

    def __init__(self) -> None:
        self._set = False
        self._fut: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def wait(self) -> None:
        if self._set:
            return
        if self._fut is None:
            self._fut = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._fut)  # a waiter cancelled leaves the others waiting


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

    def get_nowait(self) -> Any | None:
        return self._items.popleft() if self._items else None

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


@dataclass
class Received:
    """One message from the SDK: its frame type id, header flags and decoded protobuf."""

    type_id: int
    flags: int
    msg: Any

    @property
    def name(self) -> str:
        return messages.NAMES_BY_ID.get(self.type_id, hex(self.type_id))


@dataclass
class AttemptEnded:
    """The app finished the response. `error` is set when the app task raised or was cancelled; an attempt that
    ended without a terminal message (End, Suspension, Error) failed even when `error` is None."""

    status: int | None
    error: BaseException | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # cancelled from outside, not by abort(): its event loop is shutting down (the script or kernel ends)
    lost: bool = False
    # a BaseException that escaped handler code (KeyboardInterrupt, SystemExit, a stray CancelledError)
    escaped: BaseException | None = None


class Attempt:
    """One HTTP/2-style bidi stream to the app: `start()`, then read with `next()` (or callbacks), write with
    `notify()`."""

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
        self._outbox = _Pipe()
        self._decoder = framing.Decoder()
        self._input_closed = False
        self._response_done = _Flag()
        self._status: int | None = None
        self._resp_headers: list[tuple[bytes, bytes]] = []  # decoded when the attempt ends
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
        self.on_waiting: Callable[[], None] | None = None
        # Push mode: when set, each SDK message (and the end) goes to these callbacks synchronously, as the
        # SDK sends it, instead of waiting in a queue for next(). The runtime uses push mode.
        self.on_message: Callable[[Received], None] | None = None
        self.on_end: Callable[[AttemptEnded], None] | None = None

    # --- the ASGI callables given to the app ---
    async def _receive(self) -> dict:
        try:
            if not self._inbox and self._input_closed:
                # After the body ended, hold the stream open until the response is complete.
                await self._response_done.wait()
                return {"type": "http.disconnect"}
            item = await self._inbox.get()
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
            if not self._response_done.is_set() and task is not None and task.cancelling():
                self._lost = not self._aborted
                self.abort()
            raise

    async def _send(self, event: dict) -> None:
        kind = event["type"]
        if kind == "http.response.start":
            self._status = event["status"]
            self._resp_headers = event.get("headers", [])
        elif kind == "http.response.body":
            for type_id, flags, payload in self._decoder.feed(event.get("body", b"")):
                item = Received(type_id, flags, messages.parse(type_id, payload, self.version))
                if self.on_message is not None:
                    self.on_message(item)
                else:
                    self._outbox.put(item)
            if not event.get("more_body", False):
                self._response_done.set()

    # --- the server side ---
    def start(self, start: Any, journal: list[bytes]) -> None:
        """Send Start and the stored journal frames (already encoded), then let the app run."""
        start.known_entries = len(journal)
        body = framing.encode(start) + b"".join(journal)
        self._inbox.put({"type": "http.request", "body": body, "more_body": True})
        self._task = asyncio.get_running_loop().create_task(self._run_app())
        self._task.add_done_callback(self._app_task_done)

    def _app_task_done(self, task: asyncio.Task[None]) -> None:
        # Normally _run_app reports the end itself; a task cancelled before its first step never ran it.
        if self.ended is None:
            self._report_end(ConnectionAbortedError("attempt aborted before it started"))

    async def _run_app(self) -> None:
        error: BaseException | None = None
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

    def _report_end(self, error: BaseException | None) -> None:
        self._response_done.set()
        headers = {k.decode(): v.decode() for k, v in self._resp_headers}
        self.ended = AttemptEnded(self._status, error, headers, self._lost, self.escaped)
        on_end = self.on_end
        # drop the callbacks: they usually close over an object that refers back to this attempt
        self.on_message = self.on_end = self.on_waiting = None
        if on_end is not None:
            on_end(self.ended)
        else:
            self._outbox.put(self.ended)

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

    @property
    def unread(self) -> int:
        """Messages from the SDK not yet taken with next()."""
        return len(self._outbox)

    def close_input(self) -> None:
        if not self._input_closed:
            self._input_closed = True
            self._batch = None  # nothing may join a chunk queued before the end of the body
            self._inbox.put({"type": "http.request", "body": b"", "more_body": False})

    @property
    def input_closed(self) -> bool:
        return self._input_closed

    async def next(self) -> Received | AttemptEnded:
        return await self._outbox.get()

    def next_nowait(self) -> Received | AttemptEnded | None:
        return self._outbox.get_nowait()

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
        self._response_done.set()
        task = self._task
        if task is None or task.done():
            return
        loop = task.get_loop()

        def kick(tries: int) -> None:
            if not task.done() and tries > 0:
                task.cancel()
                loop.call_soon(kick, tries - 1)

        kick(50)

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)
