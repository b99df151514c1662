"""Ingress requests under an exploring strategy: which of them may land in either order.

Each ingress request is its own sender: two a client has in flight at once (sends started together with
`asyncio.gather`, a call started as a task and a send) are separate HTTP requests, which Restate may
append in either order. A request the client saw accepted (its `await` returned) before it made another
goes first: that one is held until every request accepted before it was made has run. An operation from a
cell (rt.cancel, rt.resolve_promise, ...) is a request too, of its own kind ("operation"), accepted as soon
as the call returns. With the default strategy (`AsPosted`) every request runs as it is made, and none of
this is used.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

from .scheduler import Scheduler

Source = tuple[str, int]  # ("ingress", n) for a call or a send, ("operation", n) for an operation
PROMISE_OPERATION = "complete promise "


def promise_operation(workflow: str, key: str, name: str) -> str:
    """What an operation that completes a workflow's promise is called (an explorer reads back which)."""
    return PROMISE_OPERATION + json.dumps([workflow, key, name])


def promise_named(what: str) -> tuple[str, str, str] | None:
    """The (workflow, key, name) a promise operation completes; None for any other event."""
    if not what.startswith(PROMISE_OPERATION):
        return None
    workflow, key, name = json.loads(what[len(PROMISE_OPERATION):])
    return workflow, key, name


class IngressOrder:
    """Posts ingress requests (and operations) to the scheduler, each as its own source, after the ones
    accepted before it."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._numbers = itertools.count(1)
        self._unrun: dict[str, int] = {}  # request (invocation id, operation) -> its number, until it runs
        self._accepted: set[int] = set()  # requests the client saw accepted that have not run yet
        self._held: list[tuple[int, frozenset[int], Source, str, Callable[[], None], str]] = []  # behind those
        self._operations = itertools.count(1)
        self.promises: set[tuple[str, str, str]] = set()  # (workflow, key, name) a held operation completes

    def clear(self) -> None:
        """Nothing in flight (the scheduler dropped its events: a restart, a restore)."""
        self._unrun.clear()
        self._accepted.clear()
        self._held.clear()
        self.promises.clear()

    def post(self, request: str, what: str, action: Callable[[], None], kind: str = "enqueue") -> None:
        """The request named `request` (the id of the invocation it creates, or an operation's name);
        `action` is its state change (an enqueue, or an operation)."""
        n = next(self._numbers)
        self._unrun[request] = n
        source = ("operation" if kind == "operation" else "ingress", n)

        def run() -> None:
            self._accepted.discard(n)
            self._unrun.pop(request, None)
            self._release(n)  # before the action: the released requests keep their place before what it posts
            action()

        if self._accepted:
            self._held.append((n, frozenset(self._accepted), source, what, run, kind))
        else:
            self.scheduler.post(source, what, run, kind)

    def post_operation(self, what: str, action: Callable[[], None]) -> None:
        """An operation from a cell: its own request, after those accepted before it was made, and accepted
        at once (the cell saw the call return), so the requests the cell makes after it go after it."""
        request = f"operation {next(self._operations)}"
        self.post(request, what, action, "operation")
        self.accepted(request)

    def accepted(self, request: str) -> None:
        """The client saw `request` (the one that creates that invocation id) accepted: requests it makes later
        go after it."""
        n = self._unrun.get(request)
        if n is not None:
            self._accepted.add(n)

    def _release(self, n: int) -> None:
        still = []
        for m, after, source, what, run, kind in self._held:
            after = after - {n}
            if after:
                still.append((m, after, source, what, run, kind))
            else:
                self.scheduler.post(source, what, run, kind)
        self._held = still
