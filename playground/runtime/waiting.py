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
    INACTIVITY_TIMEOUT_S,
    node_label,
)
from .interrupts import sigint_guard
from .journal import answered_completion_ids, awaited, call_target, call_target_id
from .model import (
    Invocation,
    JournalEntry,
)
from .waitfor import Cycle


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


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

    async def _quiesce(self, until: Invocation | None = None, seen: int | None = None) -> None:
        """Return when nothing can progress at the current time, or `until` has completed.

        A waiter sleeps on a future of its own, woken by its invocation completing, by the idle check that
        each state change schedules (once per loop turn, however many waiters), or by the heartbeat.
        Raises KeyboardInterrupt when handler code it waits on is interrupted after interrupt number `seen`.
        """
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        loop = asyncio.get_running_loop()
        if seen is None:
            seen = len(self._interrupts)
        if self._closed is not None:
            self._check_open()
        if self._to_start:
            self._start_restored()
            self._commit()
        if self._clock.follows_wall_time:
            self._timers.arm()  # e.g. timers restored from a store, or set up before this loop ran
        while True:
            self._raise_if_interrupted(seen, until)
            if until is not None and until.completed:
                return
            self._timers.fire_due()
            if not self._any_busy():
                # let callbacks already scheduled on the loop run, then look again
                for _ in range(2):
                    await asyncio.sleep(0)
                self._raise_if_interrupted(seen, until)
                if until is not None and until.completed:
                    return
                # nothing runs: held events (in the strategy's order), then due timers, may start something
                if (not self._any_busy() and (self.scheduler.eager or not self.scheduler.run_pending())
                        and not self._timers.fire_due()):
                    return
                continue
            fut = loop.create_future()
            self._sleepers.add(fut)
            if until is not None:
                until.waiters.append(fut)
            if self._heartbeat is None or self._heartbeat[0] is not loop:  # none yet, or left on a closed loop
                self._heartbeat = (loop, loop.call_later(1.0, self._beat))
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
            loop = asyncio.get_running_loop()
            self._heartbeat = (loop, loop.call_later(1.0, self._beat))

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
        Returns its record (after rt.faults.restart, the one restored from the store).

        While it waits, an interrupt (SIGINT) that lands in handler code ends that attempt (see
        interrupts.py). If this await is cancelled instead, its CancelledError says what goes on running."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        seen = len(self._interrupts)
        with sigint_guard:
            try:
                return await self._wait_until_done(inv, what, seen)
            except asyncio.CancelledError as exc:
                still = self._invocations.get(inv.id)
                if still is None or still.completed or self._closed is not None:
                    raise
                raise asyncio.CancelledError(self._goes_on(still, what, exc)) from None

    async def _wait_until_done(self, inv: Invocation, what: str, seen: int) -> Invocation:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        while True:
            inv = self._invocations.get(inv.id, inv)
            if inv.completed:
                return inv
            self._last_activity = time.monotonic()
            self._raise_if_deadlocked(inv, what)
            await self._quiesce(until=inv, seen=seen)
            if inv.completed:
                return inv
            self._raise_if_deadlocked(inv, what)
            # Idle. Code running beside this await (another task, the rest of a cell that started it in the
            # background) may still complete what it waits on: give it a few loop turns before deciding.
            epoch = self._progress
            for _ in range(4):
                await asyncio.sleep(0)
            self._raise_if_interrupted(seen, inv)
            if inv.completed or self._progress != epoch or self._any_busy() or self.scheduler.pending:
                continue
            if self._rejected_calls:
                self._raise_if_rejected_call(inv, what)
            nxt = self._timers.next_due(include_housekeeping=False)
            if nxt is not None and self._clock.jump_when_idle(nxt.due_ms):
                continue
            if nxt is not None and self._clock.follows_wall_time:
                await self._sleep_until(inv, nxt.due_ms)
                continue
            self._raise_stuck(inv, what, nxt)

    async def _sleep_until(self, inv: Invocation, due_ms: int) -> None:
        """clock='real': sleep until a timer is due, `inv` completes or something interrupts it."""
        self._timers.arm()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        inv.waiters.append(fut)
        alarm = loop.call_later(max(0.01, (due_ms - self._now()) / 1000), _set_done, fut)
        try:
            await fut
        finally:
            alarm.cancel()

    def _goes_on(self, inv: Invocation, what: str, exc: asyncio.CancelledError) -> str:
        """What a cancelled await (Jupyter's interrupt button, a timeout) leaves behind, and what to do about it."""
        why = f" ({exc.args[0]})" if exc.args and exc.args[0] else ""
        lock = (f", and it keeps the lock on {inv.target.service}/{inv.target.key} until it ends"
                if inv.lock_key is not None and self._keys.holder(inv.lock_key) == inv.id else "")
        state = {"running": "keeps running", "paused": "stays paused"}.get(inv.status, f"keeps running ({inv.status})")
        return (f"{what} was cancelled{why}, but invocation {inv.id} {state}, as on Restate: cancelling an "
                f"await does not cancel the invocation{lock}. Wait for it again with "
                f"`await rt.attach({inv.id!r})`; cancel it with `rt.cancel({inv.id!r})`.")

    def _interrupt_awaits(self, inv: Invocation, exc: KeyboardInterrupt) -> None:
        """Handler code of `inv` was interrupted, its attempt recorded as failed and `inv` paused: the awaits
        waiting on it (directly or through calls and locks) raise KeyboardInterrupt, as do settle/advance."""
        self._interrupts.append((inv.id, (
            f"{exc!r} stopped the handler of {inv.id} ({inv.target}) in attempt {inv.attempts}; the attempt is "
            f"recorded as failed and the invocation is paused. Run it again from its journal with "
            f"rt.resume({inv.id!r}), or end it with rt.kill({inv.id!r}).")))
        self._wake_all_awaits()

    def _wake_all_awaits(self) -> None:
        """Wake every await in progress (settle, advance, and awaits on invocations), to look again."""
        self._wake(self._sleepers)
        for inv in list(self._invocations.values()):
            if inv.waiters and not inv.completed:
                self._wake(inv.waiters)  # type: ignore[arg-type]

    def _raise_if_interrupted(self, seen: int, inv: Invocation | None) -> None:
        """Raise KeyboardInterrupt for an interrupt after number `seen` that this await waits on (an await
        without an invocation, settle() or advance(), waits on everything)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        for inv_id, message in self._interrupts[seen:]:
            if inv is None or inv.id == inv_id or self._wait.reaches(inv.id, inv_id):
                raise KeyboardInterrupt(message)

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
        return Deadlock(members, [(node_label(u), node_label(v), k) for u, v, k in edges])

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

    def _raise_if_rejected_call(self, inv: Invocation, what: str) -> None:
        """The await ends at an invocation whose call or send Restate rejects (its target is not registered):
        retrying on the clock cannot help, so say what is missing and how to fix it. Not raised once the
        target is registered (the next retry goes through) or when the retry policy kills it in the end."""
        chain = self._walk(inv)
        last = chain[-1][0]
        target = self._rejected_calls.get(last.id)
        if target is None or last.status != "backing-off":
            return
        problem = self._callee_problem(target)
        policy = last.handler.retry
        if problem is None or (policy.on_max_attempts == "kill" and policy.max_attempts is not None):
            return
        reason, registrable = problem
        fix = (f"register its service with rt.register(...) and the next retry goes through, or end it with "
               f"rt.kill({last.id!r})" if registrable else
               f"the handler code must change; end the invocation with rt.kill({last.id!r})")
        body = "\n".join(f"  {line}" for _, line in chain)
        raise StuckError(
            f"{what} can never complete: {last.id} {last.target} calls {target}, which Restate rejects "
            f"({reason}). A real server keeps retrying it; {fix}.\n{body}", inv.id)

    def _explain(self, inv: Invocation) -> list[str]:
        """Describe what `inv` waits on, following calls and locks."""
        return [line for _, line in self._walk(inv)]

    def _walk(self, inv: Invocation) -> list[tuple[Invocation, str]]:
        """The invocations `inv` waits on, following calls and locks, each with a line saying why."""
        lines: list[tuple[Invocation, str]] = []
        path: list[str] = []
        cur: Invocation | None = inv
        while cur is not None:
            if cur.id in path:  # cycles are reported as deadlocks before this; stop all the same
                break
            path.append(cur.id)
            if cur.completed:
                lines.append((cur, f"{cur.id} {cur.target} is completed"))
                break
            nxt: Invocation | None = None
            head = f"{cur.id} {cur.target} is {cur.status}"
            if cur.status == "pending" and cur.lock_key and self._keys.holder(cur.lock_key) is not None:
                nxt = self._invocations.get(self._keys.holder(cur.lock_key) or "")
                lines.append((cur, f"{head}: queued behind {nxt.id if nxt else '?'} which holds the lock on "
                                   f"{cur.target.service}/{cur.target.key}"))
            elif cur.deployment is None:
                lines.append((cur, f"{head}: its handler {cur.target.service}/{cur.target.handler} is not "
                                   f"registered (it was restored from the store); register its service with "
                                   f"rt.register(...)"))
            elif cur.status == "paused":
                err = cur.last_failure
                lines.append((cur, f"{head} after {cur.attempts} attempts; last failure: "
                                   f"{err.message if err else 'unknown'} (fix the cause, then rt.resume({cur.id!r}); "
                                   f"or rt.kill({cur.id!r}) to end it)"))
            elif cur.status == "backing-off":
                err = cur.last_failure
                lines.append((cur, f"{head}: attempt {cur.attempts} failed ({err.message if err else 'unknown'}); "
                                   f"the next attempt starts at {to_datetime(cur.next_retry_at or 0).isoformat()}"))
            elif cur.status == "scheduled":
                lines.append((cur, f"{head} to start at {to_datetime(cur.scheduled_at or 0).isoformat()}"))
            else:
                waits, nxt = self._waits_on(cur)
                lines.append((cur, f"{head} and waits for {waits}" if waits else head))
            cur = nxt
        return lines

    def _waits_on(self, inv: Invocation) -> tuple[str, Invocation | None]:
        completions: list[int] = []
        signals: list[int] = []
        named: list[str] = []
        done = answered_completion_ids(inv.journal)
        if inv.awaiting is not None:
            completions, signals, named = awaited(inv.awaiting, with_cancel=False)
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
                target_id = call_target_id(inv, cmd.msg)
                child = self._invocations.get(target_id or "")
                parts.append(f"its call to {call_target(cmd.msg)} ({target_id})")
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
    def awakeable_id(inv: Invocation, idx: int) -> str:
        raw = inv.start_id + idx.to_bytes(4, "big")
        return "sign_1" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
