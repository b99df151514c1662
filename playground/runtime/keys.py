"""Keys: the locks and inboxes of virtual objects and workflows. On one key, one exclusive handler runs at a
time; whatever else arrives for the key waits in its inbox and starts in arrival order (Restate's
`sys_keyed_service_status` and `sys_inbox`). The wait-for graph gets a `holds` edge from each locked key to
its holder and a `queued` edge from each queued invocation to the key."""

from __future__ import annotations

from collections import deque

from .model import Invocation
from .waitfor import Cycle, WaitForGraph

Key = tuple[str, str]  # (service, key)


class Keys:
    """Locks, inboxes and the inbox sequence; the engine starts the invocations these methods hand back."""

    def __init__(self, wait: WaitForGraph) -> None:
        self.wait = wait
        self.locks: dict[Key, str] = {}  # key -> id of the invocation holding it
        # only keys with someone queued: an inbox goes as soon as it is empty, so idle keys cost nothing
        self.inboxes: dict[Key, deque[Invocation]] = {}
        self.seq = 0  # the last inbox sequence number handed out (durable: a restore continues it)

    def clear(self, wait: WaitForGraph) -> None:
        """No locks and no queues (before a restore); the sequence goes on."""
        self.wait = wait
        self.locks = {}
        self.inboxes = {}

    def holder(self, lk: Key) -> str | None:
        return self.locks.get(lk)

    def take_or_queue(self, inv: Invocation, lk: Key, now_ms: int) -> tuple[bool, Cycle | None]:
        """`inv` takes the free key `lk` (True), or joins its inbox (False, with the cycle that queueing
        closes in the wait-for graph, if any)."""
        if lk not in self.locks and lk not in self.inboxes:
            self._hold(lk, inv)
            return True, None
        inv.inboxed_at = now_ms
        self.seq += 1
        inv.inbox_seq = self.seq
        self._queue(lk, inv)
        return False, self.wait.add(inv.id, lk, "queued")

    def release(self, inv: Invocation) -> Invocation | None:
        """`inv` lets go of its key (if it holds it): the next live invocation in the inbox takes it and is
        returned, to be started."""
        lk = inv.lock_key
        if lk is None or self.locks.get(lk) != inv.id:
            return None
        del self.locks[lk]
        self.wait.remove(lk, inv.id)
        nxt = self._pop_live(lk)
        if nxt is not None:
            self.wait.remove(nxt.id, lk)
            self._hold(lk, nxt)
        return nxt

    def restore_holder(self, lk: Key, inv: Invocation) -> None:
        self._hold(lk, inv)

    def restore_queued(self, lk: Key, inv: Invocation) -> Cycle | None:
        """Queue a restored invocation (in stored order); its inbox_seq is kept as stored."""
        self._queue(lk, inv)
        return self.wait.add(inv.id, lk, "queued")

    def start_free_heads(self) -> list[Invocation]:
        """Keys with a queue and no holder (not expected after a restore; cheap to be sure): each queue's head
        takes its key. Returns them, to be started."""
        started = []
        for lk in [lk for lk in self.inboxes if lk not in self.locks]:
            head = self._pop(lk)
            self.wait.remove(head.id, lk)
            self._hold(lk, head)
            started.append(head)
        return started

    def _queue(self, lk: Key, inv: Invocation) -> None:
        inbox = self.inboxes.get(lk)
        if inbox is None:
            inbox = self.inboxes[lk] = deque()
        inbox.append(inv)

    def _pop(self, lk: Key) -> Invocation:
        """The head of a (non-empty) inbox; the inbox goes when that empties it."""
        inbox = self.inboxes[lk]
        head = inbox.popleft()
        if not inbox:
            del self.inboxes[lk]
        return head

    def _pop_live(self, lk: Key) -> Invocation | None:
        """The first queued invocation not completed meanwhile (ended unstarted), or None."""
        while lk in self.inboxes:
            head = self._pop(lk)
            if not head.completed:
                return head
        return None

    def _hold(self, lk: Key, inv: Invocation) -> None:
        self.locks[lk] = inv.id
        self.wait.add(lk, inv.id, "holds")
