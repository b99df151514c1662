"""Ingress requests under an exploring strategy: which of them may land in either order.

Each ingress request is its own sender: two a client has in flight at once (sends started together with
`asyncio.gather`, a call started as a task and a send) are separate HTTP requests, which Restate may
append in either order. A request the client saw accepted (its `await` returned) before it made another
goes first: that one is held until every request accepted before it was made has run. With the default
strategy (`AsPosted`) every request runs as it is made, and none of this is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from .scheduler import Scheduler


class IngressOrder:
    """Posts ingress requests to the scheduler, each as its own source, after the ones accepted before it."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._numbers = itertools.count(1)
        self._unrun: dict[str, int] = {}  # invocation id -> its request's number, until the request runs
        self._accepted: set[int] = set()  # requests the client saw accepted that have not run yet
        self._held: list[tuple[int, frozenset[int], str, Callable[[], None]]] = []  # waiting for those

    def post(self, invocation_id: str, what: str, action: Callable[[], None]) -> None:
        """The request that creates `invocation_id`; `action` enqueues it."""
        n = next(self._numbers)
        self._unrun[invocation_id] = n

        def run() -> None:
            self._accepted.discard(n)
            self._unrun.pop(invocation_id, None)
            self._release(n)  # before the action: the released requests keep their place before what it posts
            action()

        if self._accepted:
            self._held.append((n, frozenset(self._accepted), what, run))
        else:
            self.scheduler.post(("ingress", n), what, run)

    def accepted(self, invocation_id: str) -> None:
        """The client saw the request that creates `invocation_id` accepted: requests it makes later go after it."""
        n = self._unrun.get(invocation_id)
        if n is not None:
            self._accepted.add(n)

    def _release(self, n: int) -> None:
        still = []
        for m, after, what, run in self._held:
            after = after - {n}
            if after:
                still.append((m, after, what, run))
            else:
                self.scheduler.post(("ingress", m), what, run)
        self._held = still
