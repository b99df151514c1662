"""Waiting without hanging: when the runtime is idle, skipping virtual time, and explaining an await
that can never finish (StuckError) or that is part of a wait-for cycle (DeadlockError)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from ..errors import Deadlock, DeadlockError, DeadlockMember, StuckError
from ..protocol import messages
from .clock import to_datetime
from .common import (
    _M,
    INACTIVITY_TIMEOUT_S,
    _node_label,
)
from .model import (
    Invocation,
    JournalEntry,
)
from .waitfor import Cycle


class Waiting:
    """Part of Runtime (see core.py): it works on the state Runtime.__init__ sets up."""

    # ------------------------------------------------------------------ idleness
    @staticmethod
    def _is_blocked(inv: Invocation) -> bool:
        a = inv.attempt
        return (a is not None and a.sdk_waiting and not a.input_closed and a.unread == 0
                and not inv.pending_runs)

    def _busy(self) -> list[Invocation]:
        return [inv for inv in self._live if not self._is_blocked(inv)]

    def _any_busy(self) -> bool:
        return any(not self._is_blocked(inv) for inv in self._live)

    async def _quiesce(self, until: Invocation | None = None) -> None:
        """Return when nothing can progress at the current time, or `until` has completed.

        A waiter sleeps on a future of its own, woken by its invocation completing, by the idle check that
        each state change schedules (once per loop turn, however many waiters), or by the heartbeat.
        """
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        loop = asyncio.get_running_loop()
        if self._closed is not None:
            self._check_open()
        if self._to_start:
            self._start_restored()
            self._commit()
        while True:
            if until is not None and until.completed:
                return
            self._fire_due_timers()
            if not self._any_busy():
                # let callbacks already scheduled on the loop run, then look again
                for _ in range(2):
                    await asyncio.sleep(0)
                if (until is not None and until.completed) or (not self._any_busy() and not self._fire_due_timers()):
                    return
                continue
            fut = loop.create_future()
            self._sleepers.add(fut)
            if until is not None:
                until.waiters.append(fut)
            if self._heartbeat is None:
                self._heartbeat = loop.call_later(1.0, self._beat)
            await fut
            if self._closed is not None:
                self._check_open()
            if until is not None and self._invocations.get(until.id, until) is not until:
                return  # restarted from the store: the caller goes on with the restored record
            if until is not None and self._wait.cycle_reached_from(until.id) is not None:
                return  # deadlocked: the caller reports it at once, without waiting for the rest to go idle
            if time.monotonic() - self._last_activity > INACTIVITY_TIMEOUT_S and self._any_busy():
                busy = ", ".join(f"{i.id} {i.target}" for i in self._busy())
                raise StuckError(
                    f"handler code has run for over {INACTIVITY_TIMEOUT_S:.0f} s without finishing or "
                    f"reaching a Restate await: {busy}. Is it waiting on something outside Restate (a plain "
                    f"asyncio future, a lock, a network call)?")

    @staticmethod
    def _wake(futures: list[asyncio.Future[None]] | set[asyncio.Future[None]]) -> None:
        for fut in futures:
            if not fut.done():
                fut.set_result(None)
        if futures:
            futures.clear()

    def _beat(self) -> None:
        """Wake waiters once a second while anyone waits, so the inactivity check runs."""
        self._heartbeat = None
        if self._sleepers:
            self._wake(self._sleepers)
            self._heartbeat = asyncio.get_running_loop().call_later(1.0, self._beat)

    def _touch(self) -> None:
        """Something may have become idle: check once, on the next loop turn."""
        if not self._check_scheduled and self._sleepers:
            self._check_scheduled = True
            asyncio.get_running_loop().call_soon(self._check_idle)

    def _check_idle(self) -> None:
        self._check_scheduled = False
        if not self._any_busy():
            self._wake(self._sleepers)

    async def _await_done(self, inv: Invocation, what: str) -> Invocation:
        """Wait for an invocation to complete, skipping virtual time when idle; raise instead of hanging.
        Returns its record (after rt.faults.restart, the one restored from the store)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        while True:
            inv = self._invocations.get(inv.id, inv)
            if inv.completed:
                return inv
            self._last_activity = time.monotonic()
            self._raise_if_deadlocked(inv, what)
            await self._quiesce(until=inv)
            if inv.completed:
                return inv
            self._raise_if_deadlocked(inv, what)
            # Idle. Code running beside this await (another task, the rest of a cell that started it in the
            # background) may still complete what it waits on: give it a few loop turns before deciding.
            epoch = self._progress
            for _ in range(4):
                await asyncio.sleep(0)
            if inv.completed or self._progress != epoch or self._any_busy():
                continue
            nxt = self._timers.next_due(include_housekeeping=False)
            if nxt is not None and self._clock.kind == "virtual":
                self._clock.set(nxt.due_ms)
                continue
            if nxt is not None and self._clock.kind == "real":
                self._ensure_real_timer_task()
                fut = asyncio.get_running_loop().create_future()
                inv.waiters.append(fut)
                try:
                    await asyncio.wait_for(fut, timeout=max(0.01, (nxt.due_ms - self._now()) / 1000))
                except TimeoutError:
                    pass
                continue
            self._raise_stuck(inv, what, nxt)

    def _on_edge(self, cycle: Cycle | None) -> None:
        if cycle is not None:
            self._wake(self._sleepers)  # awaits on a member, or behind one, raise now

    def _raise_if_deadlocked(self, inv: Invocation, what: str) -> None:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        cycle = self._wait.cycle_reached_from(inv.id)
        if cycle is None:
            return
        deadlock = self._deadlock(cycle)
        lead = "is part of" if inv.id in cycle.invocation_ids else "waits on"
        raise DeadlockError(f"{what} can never complete: {inv.id} {lead} a deadlock.\n{deadlock.describe()}",
                            inv.id, deadlock)

    def deadlocks(self) -> list[Deadlock]:
        """The wait-for cycles standing now; each lists its invocations, targets and edges and draws itself."""
        return [self._deadlock(c) for c in self._wait.cycles()]

    def _deadlock(self, cycle: Cycle) -> Deadlock:
        order = {inv_id: i for i, inv_id in enumerate(self._invocations)}
        edges = cycle.edges()
        oldest = min(range(len(edges)), key=lambda i: order.get(edges[i][0], len(order)))  # type: ignore[arg-type]
        edges = edges[oldest:] + edges[:oldest]  # list the cycle from its oldest member, usually the root
        members = []
        for u, v, kind in edges:
            if isinstance(u, tuple):
                continue  # a lock node: described with the invocation queued for it
            inv = self._invocations[u]
            if kind == "queued":
                holder = self._wait.successors(v)
                holder_id = next(iter(holder), "?")
                waits = f"is queued for the lock on {v[0]}/{v[1]}, held by {holder_id}"
            else:
                other = self._invocations.get(v)  # type: ignore[arg-type]
                verb = "its call to" if kind == "call" else "attaching to"
                waits = f"waits for {verb} {v} ({other.target if other else '?'})"
            members.append(DeadlockMember(inv.id, str(inv.target), inv.status, waits))
        return Deadlock(members, [(_node_label(u), _node_label(v), k) for u, v, k in edges])

    def _raise_stuck(self, inv: Invocation, what: str, nxt: Any) -> None:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        body = "\n".join(f"  {line}" for line in self._explain(inv))
        if nxt is not None:  # manual clock
            raise StuckError(
                f"{what} waits on a timer due at {to_datetime(nxt.due_ms).isoformat()} ({nxt.what}), but the "
                f"clock is manual: move it with `await rt.advance(...)`.\n{body}", inv.id)
        raise StuckError(
            f"{what} can never complete: nothing in the runtime can make progress.\n{body}\n"
            f"Inspect with rt.journal(id); unblock by completing what it waits on or with rt.cancel(id).", inv.id)

    def _explain(self, inv: Invocation) -> list[str]:
        """Describe what `inv` waits on, following calls and locks."""
        lines: list[str] = []
        path: list[str] = []
        cur: Invocation | None = inv
        while cur is not None:
            if cur.id in path:  # cycles are reported as deadlocks before this; stop all the same
                break
            path.append(cur.id)
            if cur.completed:
                lines.append(f"{cur.id} {cur.target} is completed")
                break
            nxt: Invocation | None = None
            head = f"{cur.id} {cur.target} is {cur.status}"
            if cur.status == "pending" and cur.lock_key and cur.lock_key in self._locks:
                nxt = self._invocations.get(self._locks[cur.lock_key])
                lines.append(f"{head}: queued behind {nxt.id if nxt else '?'} which holds the lock on "
                             f"{cur.target.service}/{cur.target.key}")
            elif cur.deployment is None:
                lines.append(f"{head}: its handler {cur.target.service}/{cur.target.handler} is not registered "
                             f"(it was restored from the store); register its service with rt.register(...)")
            elif cur.status == "paused":
                err = cur.last_failure
                lines.append(f"{head} after {cur.attempts} attempts; last failure: "
                             f"{err.message if err else 'unknown'} (fix the cause, then rt.resume({cur.id!r}); "
                             f"or rt.kill({cur.id!r}) to end it)")
            elif cur.status == "backing-off":
                err = cur.last_failure
                lines.append(f"{head}: attempt {cur.attempts} failed ({err.message if err else 'unknown'}); "
                             f"the next attempt starts at {to_datetime(cur.next_retry_at or 0).isoformat()}")
            elif cur.status == "scheduled":
                lines.append(f"{head} to start at {to_datetime(cur.scheduled_at or 0).isoformat()}")
            else:
                waits, nxt = self._waits_on(cur)
                lines.append(f"{head} and waits for {waits}" if waits else head)
            cur = nxt
        return lines

    def _waits_on(self, inv: Invocation) -> tuple[str, Invocation | None]:
        completions: list[int] = []
        signals: list[int] = []
        named: list[str] = []

        def walk(f: Any) -> None:
            completions.extend(f.waiting_completions)
            signals.extend(s for s in f.waiting_signals if s != messages.CANCEL_SIGNAL)
            named.extend(f.waiting_named_signals)
            for n in f.nested_futures:
                walk(n)

        done = {getattr(e.msg, "completion_id", None) for e in inv.journal if messages.is_notification(e.type_id)}
        if inv.awaiting is not None:
            walk(inv.awaiting)
        if inv.awaiting is None or (completions and all(c in done for c in completions)):
            # The SDK says what it awaits only when it wakes up, so what it said may be an earlier await:
            # then go by the commands still without a result.
            completions = [e.msg.result_completion_id for e in inv.journal if messages.is_command(e.type_id)
                           and getattr(e.msg, "result_completion_id", 0) and e.msg.result_completion_id not in done]
            signals, named = [], []
            if not completions:
                return "an awakeable or a signal that nothing has completed", None
        parts: list[str] = []
        child: Invocation | None = None
        for cid in completions:
            cmd = self._command_for(inv, cid)
            if cmd is None:
                parts.append(f"completion {cid}")
                continue
            name = messages.NAMES_BY_ID[cmd.type_id]
            if name == "Call":
                target_id = self._call_target_id(inv, cmd.msg)
                child = self._invocations.get(target_id or "")
                parts.append(f"its call to {cmd.msg.service_name}/"
                             f"{cmd.msg.key + '/' if cmd.msg.key else ''}{cmd.msg.handler_name} ({target_id})")
            elif name == "Sleep":
                parts.append(f"a sleep until {to_datetime(cmd.due_ms or 0).isoformat()}")
            elif name == "GetPromise":
                parts.append(f"durable promise {cmd.msg.key!r}, which nothing has resolved")
            elif name == "Run":
                parts.append(f"ctx.run {cmd.msg.name!r}")
            else:
                parts.append(f"{name} (completion {cid})")
        for idx in signals:
            parts.append(f"awakeable {self.awakeable_id(inv, idx)}, which nothing has resolved")
        for n in named:
            parts.append(f"signal {n!r}, which nothing has sent")
        return " or ".join(parts), child

    @staticmethod
    def _command_for(inv: Invocation, cid: int) -> JournalEntry | None:
        for e in inv.journal:
            if messages.is_command(e.type_id) and getattr(e.msg, "result_completion_id", None) == cid:
                return e
        return None

    @staticmethod
    def _call_target_id(inv: Invocation, call: Any) -> str | None:
        idx = call.invocation_id_notification_idx
        for e in inv.journal:
            if e.type_id == _M["CallInvocationIdCompletion"] and e.msg.completion_id == idx:
                return e.msg.invocation_id
        return None

    @staticmethod
    def awakeable_id(inv: Invocation, idx: int) -> str:
        raw = inv.start_id + idx.to_bytes(4, "big")
        return "sign_1" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
