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
        inbox = self.inboxes.setdefault(lk, deque())
        if lk not in self.locks and not inbox:
            self._hold(lk, inv)
            return True, None
        inv.inboxed_at = now_ms
        self.seq += 1
        inv.inbox_seq = self.seq
        inbox.append(inv)
        return False, self.wait.add(inv.id, lk, "queued")

    def release(self, inv: Invocation) -> Invocation | None:
        """`inv` lets go of its key (if it holds it): the next live invocation in the inbox takes it and is
        returned, to be started."""
        lk = inv.lock_key
        if lk is None or self.locks.get(lk) != inv.id:
            return None
        del self.locks[lk]
        self.wait.remove(lk, inv.id)
        inbox = self.inboxes.get(lk)
        while inbox:
            nxt = inbox.popleft()
            if nxt.completed:
                continue
            self.wait.remove(nxt.id, lk)
            self._hold(lk, nxt)
            return nxt
        return None

    def restore_holder(self, lk: Key, inv: Invocation) -> None:
        self._hold(lk, inv)

    def restore_queued(self, lk: Key, inv: Invocation) -> Cycle | None:
        """Queue a restored invocation (in stored order); its inbox_seq is kept as stored."""
        self.inboxes.setdefault(lk, deque()).append(inv)
        return self.wait.add(inv.id, lk, "queued")

    def start_free_heads(self) -> list[Invocation]:
        """Keys with a queue and no holder (not expected after a restore; cheap to be sure): each queue's head
        takes its key. Returns them, to be started."""
        started = []
        for lk, inbox in self.inboxes.items():
            if lk not in self.locks and inbox:
                head = inbox.popleft()
                self.wait.remove(head.id, lk)
                self._hold(lk, head)
                started.append(head)
        return started

    def _hold(self, lk: Key, inv: Invocation) -> None:
        self.locks[lk] = inv.id
        self.wait.add(lk, inv.id, "holds")
