"""Explaining an await that can never finish: the wait-for cycle behind a DeadlockError, and the chain of
invocations, locks, timers and rejected calls behind a StuckError. Read-only: it changes nothing."""

from __future__ import annotations

import base64
from typing import Any, Protocol

from ..errors import Deadlock, DeadlockError, DeadlockMember, StuckError
from ..protocol import messages
from .clock import to_datetime
from .common import node_label
from .journal import answered_completion_ids, awaited, call_target, call_target_id
from .keys import Keys
from .model import Invocation, JournalEntry, Target
from .waitfor import Cycle, WaitForGraph


class CalleeCheck(Protocol):
    """Whether Restate can route a call to a target (the commands part answers it)."""

    def callee_problem(self, target: Target) -> tuple[str, bool] | None: ...


class ExplainHost(Protocol):
    """What the explainer reads of the engine (each time: a restore replaces the tables)."""

    @property
    def _invocations(self) -> dict[str, Invocation]: ...
    @property
    def _keys(self) -> Keys: ...
    @property
    def _wait(self) -> WaitForGraph: ...
    @property
    def _rejected_calls(self) -> dict[str, Target]: ...
    @property
    def _commands(self) -> CalleeCheck: ...


class Explainer:
    """The engine's part that says why an await cannot finish; the idleness part (waiting.py) raises what
    it builds: raise_if_deadlocked, raise_if_rejected_call, raise_stuck; deadlocks() for rt.deadlocks()."""

    def __init__(self, host: ExplainHost) -> None:
        self.host = host

    def raise_if_deadlocked(self, inv: Invocation, what: str) -> None:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        cycle = self.host._wait.cycle_reached_from(inv.id)
        if cycle is None:
            return
        deadlock = self.deadlock(cycle)
        lead = "is part of" if inv.id in cycle.invocation_ids else "waits on"
        raise DeadlockError(f"{what} can never complete: {inv.id} {lead} a deadlock.\n{deadlock.describe()}",
                            inv.id, deadlock)

    def deadlocks(self) -> list[Deadlock]:
        """The wait-for cycles standing now; each lists its invocations, targets and edges and draws itself."""
        return [self.deadlock(c) for c in self.host._wait.cycles()]

    def deadlock(self, cycle: Cycle) -> Deadlock:
        order = {inv_id: i for i, inv_id in enumerate(self.host._invocations)}
        edges = cycle.edges()
        oldest = min(range(len(edges)), key=lambda i: order.get(edges[i][0], len(order)))  # type: ignore[arg-type]
        edges = edges[oldest:] + edges[:oldest]  # list the cycle from its oldest member, usually the root
        members = []
        for u, v, kind in edges:
            if isinstance(u, tuple):
                continue  # a lock node: described with the invocation queued for it
            inv = self.host._invocations[u]
            if kind == "queued":
                holder = self.host._wait.successors(v)
                holder_id = next(iter(holder), "?")
                waits = f"is queued for the lock on {v[0]}/{v[1]}, held by {holder_id}"
            else:
                other = self.host._invocations.get(v)  # type: ignore[arg-type]
                verb = "its call to" if kind == "call" else "attaching to"
                waits = f"waits for {verb} {v} ({other.target if other else '?'})"
            members.append(DeadlockMember(inv.id, str(inv.target), inv.status, waits))
        return Deadlock(members, [(node_label(u), node_label(v), k) for u, v, k in edges])

    def raise_stuck(self, inv: Invocation, what: str, nxt: Any) -> None:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        body = "\n".join(f"  {line}" for line in self.explain(inv))
        if nxt is not None:  # manual clock
            raise StuckError(
                f"{what} waits on a timer due at {to_datetime(nxt.due_ms).isoformat()} ({nxt.what}), but the "
                f"clock is manual: move it with `await rt.advance(...)`.\n{body}", inv.id)
        raise StuckError(
            f"{what} can never complete: nothing in the runtime can make progress.\n{body}\n"
            f"Inspect with rt.journal(id); unblock by completing what it waits on or with rt.cancel(id).", inv.id)

    def raise_if_rejected_call(self, inv: Invocation, what: str) -> None:
        """The await ends at an invocation whose call or send Restate rejects (its target is not registered):
        retrying on the clock cannot help, so say what is missing and how to fix it. Not raised once the
        target is registered (the next retry goes through) or when the retry policy kills it in the end."""
        chain = self.walk(inv)
        last = chain[-1][0]
        target = self.host._rejected_calls.get(last.id)
        if target is None or last.status != "backing-off":
            return
        problem = self.host._commands.callee_problem(target)
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

    def explain(self, inv: Invocation) -> list[str]:
        """Describe what `inv` waits on, following calls and locks."""
        return [line for _, line in self.walk(inv)]

    def walk(self, inv: Invocation) -> list[tuple[Invocation, str]]:
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
            if cur.status == "pending" and cur.lock_key and self.host._keys.holder(cur.lock_key) is not None:
                nxt = self.host._invocations.get(self.host._keys.holder(cur.lock_key) or "")
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
                waits, nxt = self.waits_on(cur)
                lines.append((cur, f"{head} and waits for {waits}" if waits else head))
            cur = nxt
        return lines

    def waits_on(self, inv: Invocation) -> tuple[str, Invocation | None]:
        completions: list[int] = []
        signals: list[int] = []
        named: list[str] = []
        done = answered_completion_ids(inv.journal)
        if inv.awaiting is not None:
            completions, signals, named = awaited(inv.awaiting, with_cancel=False)
        if inv.awaiting is None or (completions and all(c in done for c in completions)):
            # The SDK says what it awaits only when it wakes up, so what it said may be an earlier await:
            # then go by the commands still without a result.
            ids: list[int] = [getattr(e.msg, "result_completion_id", 0) for e in inv.journal
                              if messages.is_command(e.type_id)]
            completions = [cid for cid in ids if cid and cid not in done]
            signals, named = [], []
            if not completions:
                return "an awakeable or a signal that nothing has completed", None
        parts: list[str] = []
        child: Invocation | None = None
        for cid in completions:
            cmd = self.command_for(inv, cid)
            if cmd is None:
                parts.append(f"completion {cid}")
                continue
            name = messages.NAMES_BY_ID[cmd.type_id]
            if name == "Call":
                target_id = call_target_id(inv, cmd.msg)
                child = self.host._invocations.get(target_id or "")
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
    def command_for(inv: Invocation, cid: int) -> JournalEntry | None:
        for e in inv.journal:
            if messages.is_command(e.type_id) and getattr(e.msg, "result_completion_id", None) == cid:
                return e
        return None

    @staticmethod
    def awakeable_id(inv: Invocation, idx: int) -> str:
        raw = inv.start_id + idx.to_bytes(4, "big")
        return "sign_1" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
