"""The embedded Restate server: it owns invocations, journals, per-key locks and inboxes, state, timers,
idempotency and workflow records, and drives each attempt of the SDK's app over the service protocol.

Everything happens on the caller's event loop. An attempt is "busy" until the SDK is blocked on the
runtime: its VM asked to wait for external progress (observed by sdk_hooks), every message it sent has
been handled, and no ctx.run closure is executing. When no attempt is busy and no timer is due, nothing
can progress at the current time. That is the point where the virtual clock may jump to
the next timer, where `settle()` returns, and where an ingress await that is still waiting raises.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any
from collections.abc import Callable, Iterable

import restate
from restate.handler import handler_from_callable

from ..errors import Deadlock, DeadlockError, DeadlockMember, NotReady, StuckError
from .. import notebook
from ..protocol import framing, messages, sdk_hooks
from ..protocol.deployment import AsgiDeployment, Deployment, ServiceInfo, parse_manifest
from ..protocol.driver import Attempt, AttemptEnded, Received
from .clock import Clock, TimerHeap, to_datetime
from .model import _DONE, _NO_RUNS, Failure, Invocation, JournalEntry, SendHandle, Target, TransientError
from .waitfor import Cycle, WaitForGraph

DAY_MS = 24 * 3600 * 1000
# Handler code that neither finishes nor reaches a Restate await for this long (wall time) while a cell
# waits is reported instead of hanging the cell (Restate's own inactivity timeout is 1 minute).
INACTIVITY_TIMEOUT_S = 60.0
_M = messages.TYPE_IDS
_INPUT, _START = messages.CLASSES["Input"], messages.CLASSES["Start"]


def _id_from(raw: bytes) -> str:
    """Restate-style id text: 'inv_1' and 96 bits of the id in hex (unique enough, and cheap to make)."""
    return "inv_1" + raw[:12].hex()


def _node_label(node: Any) -> str:
    return f"lock {node[0]}/{node[1]}" if isinstance(node, tuple) else node


def _failure_msg(f: Failure) -> Any:
    return messages.new("Failure", code=f.code, message=f.message,
                        metadata=[messages.new("FailureMetadata", key=k, value=v) for k, v in f.metadata.items()])


def _failure_from(msg: Any) -> Failure:
    return Failure(msg.code, msg.message, {m.key: m.value for m in msg.metadata})


def _value_or_failure(result: bytes | Failure) -> dict[str, Any]:
    if isinstance(result, Failure):
        return {"failure": _failure_msg(result)}
    return {"value": messages.new("Value", content=result)}


def _ms(delta: timedelta | None, what: str) -> int:
    if delta is None:
        return 0
    if not isinstance(delta, timedelta):
        raise TypeError(f"{what} must be a datetime.timedelta, not {type(delta).__name__}")
    if delta < timedelta(0):
        raise ValueError(f"{what} must not be negative (got {delta})")
    return int(delta.total_seconds() * 1000)


class _Registered:
    """One revision of a service: what discovery said about it, the deployment serving it, and the SDK object."""

    def __init__(self, info: ServiceInfo, deployment: Deployment, obj: Any, revision: int) -> None:
        self.info, self.deployment, self.obj, self.revision = info, deployment, obj, revision


class Runtime:
    """An embedded Restate server for notebooks and tests. See the README for a tour."""

    def __init__(self, *services: Any, clock: str = "virtual", start: datetime | None = None, seed: int = 0,
                 mode: str = "normal") -> None:
        if mode not in ("normal", "always_suspend"):
            raise ValueError(f"mode must be 'normal' or 'always_suspend', not {mode!r}")
        # always_suspend: every attempt gets its journal and then a closed request body, so the SDK suspends
        # at each await on something new and resumes by replay (Restate's inactivity-timeout-0 setting)
        self.mode = mode
        sdk_hooks.install()
        notebook.install_error_display()
        self._clock = Clock(clock, start)
        self._timers = TimerHeap()
        self._rng = random.Random(seed)
        self._services: dict[str, _Registered] = {}
        self._invocations: dict[str, Invocation] = {}
        self._by_start_id: dict[bytes, Invocation] = {}
        self._state: dict[tuple[str, str], dict[str, bytes]] = {}
        self._locks: dict[tuple[str, str], str] = {}
        self._inboxes: dict[tuple[str, str], deque[Invocation]] = {}
        self._idempotency: dict[tuple[str, str, str, str], str] = {}
        self._workflow_runs: dict[tuple[str, str], str] = {}
        self._promises: dict[tuple[str, str], dict[str, bytes | Failure]] = {}
        self._promise_waiters: dict[tuple[str, str, str], list[tuple[Invocation, int]]] = {}
        self._live: set[Invocation] = set()
        self._wait = WaitForGraph()
        self._changed = asyncio.Event()  # wakes the wall-clock timer loop (clock="real")
        self._last_activity = time.monotonic()
        self._sleepers: set[asyncio.Future[None]] = set()  # waiters in _quiesce
        self._progress = 0  # bumped by every delivery, start and completion: "did anything happen?"
        self._check_scheduled = False
        self._heartbeat: asyncio.TimerHandle | None = None
        self._real_timer_task: asyncio.Task[None] | None = None
        if services:
            self.register(*services)

    # ------------------------------------------------------------------ registration
    def register(self, *services: Any) -> None:
        """Register services (a new revision for a name seen before: new invocations use it, running ones keep theirs)."""
        if not services:
            raise ValueError("register() needs at least one restate.Service, VirtualObject or Workflow")
        names: set[str] = set()
        for s in services:
            if not isinstance(s, (restate.Service, restate.VirtualObject, restate.Workflow)):
                what = getattr(s, "__name__", type(s).__name__)
                hint = (" (pass the service object that the handler was declared on, not the handler)"
                        if callable(s) else "")
                raise TypeError(f"register() takes restate.Service, VirtualObject or Workflow objects; got {what}{hint}")
            if s.name in names:
                raise ValueError(f"two services named {s.name!r} in one register() call")
            names.add(s.name)
        deployment = AsgiDeployment(restate.app(services=list(services)))
        infos = parse_manifest(deployment.discover())
        for s in services:
            previous = self._services.get(s.name)
            revision = previous.revision + 1 if previous else 1
            self._services[s.name] = _Registered(infos[s.name], deployment, s, revision)

    def services(self) -> dict[str, ServiceInfo]:
        return {name: reg.info for name, reg in self._services.items()}

    # ------------------------------------------------------------------ clock
    @property
    def now(self) -> datetime:
        return to_datetime(self._clock.now_ms())

    @property
    def clock(self) -> str:
        return self._clock.kind

    def _now(self) -> int:
        return self._clock.now_ms()

    def _add_timer(self, due_ms: int, action: Callable[[], None], what: str) -> None:
        self._timers.add(due_ms, action, what)
        self._timer_added()

    def _add_expiry(self, after_ms: int, action: Callable[[], None], what: str) -> None:
        """A housekeeping timer (retention): it fires when time passes, but never makes time skip."""
        self._timers.add_housekeeping(self._now(), after_ms, action, what)
        self._timer_added()

    def _timer_added(self) -> None:
        if self._clock.kind == "real":
            self._changed.set()  # the wall-clock timer loop may need to wake earlier
            self._ensure_real_timer_task()

    def _fire_due_timers(self) -> bool:
        fired = False
        while (t := self._timers.pop_due(self._now())) is not None:
            t.action()
            fired = True
        if fired:
            self._changed.set()
        return fired

    def _ensure_real_timer_task(self) -> None:
        if self._real_timer_task is None or self._real_timer_task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._real_timer_task = loop.create_task(self._real_timer_loop())

    async def _real_timer_loop(self) -> None:
        while self._timers.next_due() is not None:
            self._fire_due_timers()
            nxt = self._timers.next_due()
            if nxt is None:
                break
            self._changed.clear()
            wait = max(0.0, (nxt.due_ms - self._now()) / 1000)
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(wait, 1.0))
            except TimeoutError:
                pass

    async def advance(self, delta: timedelta) -> None:
        """Move virtual time forward, firing every timer due on the way in order, and settle."""
        if self._clock.kind == "real":
            raise ValueError("advance() needs a virtual or manual clock; this runtime uses clock='real'")
        target = self._now() + _ms(delta, "advance()'s delta")
        await self._quiesce()
        while (nxt := self._timers.next_due()) is not None and nxt.due_ms <= target:
            self._clock.set(nxt.due_ms)
            await self._quiesce()
        self._clock.set(target)
        await self._quiesce()

    async def settle(self) -> None:
        """Run until nothing can progress at the current time (time itself does not move)."""
        await self._quiesce()

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
        loop = asyncio.get_running_loop()
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

    async def _await_done(self, inv: Invocation, what: str) -> None:
        """Wait for an invocation to complete, skipping virtual time when idle; raise instead of hanging."""
        while not inv.completed:
            self._last_activity = time.monotonic()
            self._raise_if_deadlocked(inv, what)
            await self._quiesce(until=inv)
            if inv.completed:
                return
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

    # ------------------------------------------------------------------ ingress
    @staticmethod
    def _handler_of(tpe: Any) -> Any:
        try:
            return handler_from_callable(tpe)
        except (ValueError, TypeError, KeyError):
            name = getattr(tpe, "__name__", repr(tpe))
            raise TypeError(f"{name} is not a Restate handler: decorate it with @<service>.handler() "
                            f"(or @<workflow>.main()) and pass the decorated function") from None

    def _resolve(self, tpe: Any, how: str, key: str | None) -> tuple[Any, Target]:
        h = self._handler_of(tpe)
        kind = h.service_tag.kind  # "service", "object" or "workflow"
        label = {"service": "a Service", "object": "a Virtual Object", "workflow": "a Workflow"}[kind]
        right = {"service": "service_call/service_send", "object": "object_call/object_send",
                 "workflow": "workflow_call/workflow_send"}[kind]
        if kind != how:
            raise TypeError(f"{h.service_tag.name}/{h.name} belongs to {label}: use rt.{right}")
        if how != "service":
            if key is None:
                what = "workflow id" if how == "workflow" else "object key"
                raise ValueError(f"{h.service_tag.name}/{h.name} needs key=...: the {what} to address, e.g. key='Mary'")
            if not isinstance(key, str):
                raise TypeError(f"key must be a str, not {type(key).__name__}")
        return h, Target(h.service_tag.name, h.name, key)

    @staticmethod
    def _encode_arg(h: Any, target: Target, arg: Any) -> bytes:
        if h.arity == 1:
            if arg is not None:
                raise ValueError(f"{target} takes no input; call it without arg")
            return b""
        serde = h.handler_io.input_serde
        try:
            return bytes(serde.serialize(arg))
        except Exception as exc:  # noqa: BLE001 - any serde failure is the caller's bad input
            raise TypeError(f"cannot encode arg for {target} with its serde {type(serde).__name__}: {exc}") from exc

    @staticmethod
    def _decode(h: Any, result: bytes | Failure | None) -> Any:
        if isinstance(result, Failure):
            raise restate.TerminalError(result.message, result.code, metadata=result.metadata or None)
        return h.handler_io.output_serde.deserialize(result or b"")

    async def _typed_call(self, how: str, tpe: Any, key: str | None, arg: Any, idempotency_key: str | None,
                          headers: dict[str, str] | None) -> Any:
        h, target = self._resolve(tpe, how, key)
        body = self._encode_arg(h, target, arg)
        inv = self._ingress_call(target, body, headers, idempotency_key)
        await self._await_done(inv, f"{how}_call to {target}")
        return self._decode(h, inv.result)

    async def _typed_send(self, how: str, tpe: Any, key: str | None, arg: Any, send_delay: timedelta | None,
                          idempotency_key: str | None, headers: dict[str, str] | None) -> SendHandle:
        h, target = self._resolve(tpe, how, key)
        delay = _ms(send_delay, "send_delay")
        body = self._encode_arg(h, target, arg)
        return self._ingress_send(target, body, headers, idempotency_key, delay)

    async def service_call(self, tpe: Any, arg: Any = None, idempotency_key: str | None = None,
                           headers: dict[str, str] | None = None) -> Any:
        return await self._typed_call("service", tpe, None, arg, idempotency_key, headers)

    async def object_call(self, tpe: Any, key: str | None = None, arg: Any = None,
                          idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        return await self._typed_call("object", tpe, key, arg, idempotency_key, headers)

    async def workflow_call(self, tpe: Any, key: str | None = None, arg: Any = None,
                            idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        return await self._typed_call("workflow", tpe, key, arg, idempotency_key, headers)

    async def service_send(self, tpe: Any, arg: Any = None, send_delay: timedelta | None = None,
                           idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> SendHandle:
        return await self._typed_send("service", tpe, None, arg, send_delay, idempotency_key, headers)

    async def object_send(self, tpe: Any, key: str | None = None, arg: Any = None, send_delay: timedelta | None = None,
                          idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> SendHandle:
        return await self._typed_send("object", tpe, key, arg, send_delay, idempotency_key, headers)

    async def workflow_send(self, tpe: Any, key: str | None = None, arg: Any = None,
                            send_delay: timedelta | None = None, idempotency_key: str | None = None,
                            headers: dict[str, str] | None = None) -> SendHandle:
        return await self._typed_send("workflow", tpe, key, arg, send_delay, idempotency_key, headers)

    def _generic_target(self, service: str, handler: str, arg: bytes, key: str | None) -> Target:
        if not isinstance(arg, (bytes, bytearray)):
            raise TypeError(f"generic calls take raw bytes as arg, not {type(arg).__name__} (e.g. b'\"Hi\"')")
        return Target(service, handler, key)

    async def generic_call(self, service: str, handler: str, arg: bytes, key: str | None = None,
                           idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> bytes:
        target = self._generic_target(service, handler, arg, key)
        inv = self._ingress_call(target, bytes(arg), headers, idempotency_key)
        await self._await_done(inv, f"generic_call to {target}")
        if isinstance(inv.result, Failure):
            raise restate.TerminalError(inv.result.message, inv.result.code, metadata=inv.result.metadata or None)
        return inv.result or b""

    async def generic_send(self, service: str, handler: str, arg: bytes, key: str | None = None,
                           send_delay: timedelta | None = None, idempotency_key: str | None = None,
                           headers: dict[str, str] | None = None) -> SendHandle:
        target = self._generic_target(service, handler, arg, key)
        return self._ingress_send(target, bytes(arg), headers, idempotency_key, _ms(send_delay, "send_delay"))

    def _ingress_send(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None,
                      delay: int) -> SendHandle:
        inv, previous, _ = self._invoke(target, body, headers, idem, delay, invoked_by=None, strict=True)
        inv.sent = inv.sent or not previous
        exec_time = to_datetime(inv.scheduled_at) if inv.scheduled_at else None
        return SendHandle(inv.id, "PreviouslyAccepted" if previous else "Accepted", exec_time)

    def _ingress_call(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None) -> Invocation:
        inv, _previous, error = self._invoke(target, body, headers, idem, 0, invoked_by=None, strict=True)
        if error is not None:
            raise restate.TerminalError(error.message, error.code)
        return inv

    def _find(self, target: Any, key: str | None, idempotency_key: str | None) -> Invocation:
        """The invocation an attach/output refers to: an id; a workflow handler and its id (the run of that
        workflow); or a handler, key and idempotency key (the idempotent invocation)."""
        if isinstance(target, str):
            if key is not None or idempotency_key is not None:
                raise TypeError("pass either an invocation id, or a handler with key=/idempotency_key=, not both")
            return self._get(target)
        h = self._handler_of(target)
        svc, name = h.service_tag.name, h.name
        if idempotency_key is not None:
            inv_id = self._idempotency.get((svc, key or "", name, idempotency_key))
            if inv_id is None:
                raise restate.TerminalError("not found", 404)
        elif h.service_tag.kind == "workflow" and key is not None:
            inv_id = self._workflow_runs.get((svc, key))
            if inv_id is None:
                raise restate.TerminalError("not found", 404)
        else:
            raise restate.TerminalError("You can attach only to invocations created with an idempotency key, or "
                                        "for workflow methods.", 400)
        return self._invocations[inv_id]

    async def attach(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        """Wait for an invocation's result: by invocation id, by workflow (`attach(run, key="wf-1")`), or by
        idempotency key (`attach(handler, key=..., idempotency_key=...)`). Decoded with its handler's serde."""
        inv = self._find(target, key, idempotency_key)
        await self._await_done(inv, f"attach to {inv.id} ({inv.target})")
        return self._decode_for(inv)

    def output(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        """The result of a completed invocation (found as for attach); raises pg.NotReady while it runs."""
        inv = self._find(target, key, idempotency_key)
        if not inv.completed:
            raise NotReady(f"{inv.id} ({inv.target}) is {inv.status}: the response is not ready yet")
        return self._decode_for(inv)

    def _decode_for(self, inv: Invocation) -> Any:
        reg = self._services.get(inv.target.service)
        handler = reg.obj.handlers.get(inv.target.handler) if reg else None
        if handler is None:
            if isinstance(inv.result, Failure):
                raise restate.TerminalError(inv.result.message, inv.result.code)
            return inv.result
        return self._decode(handler, inv.result)

    def _get(self, invocation_id: str) -> Invocation:
        inv = self._invocations.get(invocation_id)
        if inv is None:
            raise KeyError(f"no invocation {invocation_id!r} in this runtime (see rt.invocations())")
        return inv

    # ------------------------------------------------------------------ operations (as Restate's CLI offers them)
    def cancel(self, invocation_id: str) -> None:
        """Cancel as Restate does: a started invocation gets the cancel signal (the SDK raises TerminalError
        409 "cancelled" at its current await and cancels its pending calls); one not yet started ends at
        once with 409 "canceled"; a finished one is left alone."""
        self._cancel(self._get(invocation_id))

    def kill(self, invocation_id: str) -> None:
        """End an invocation and every call it waits on at once, without running any more handler code.
        Callers get 409 "killed"; one-way sends it made are not touched; locks are released."""
        self._kill(self._get(invocation_id))

    def pause(self, invocation_id: str) -> None:
        """Stop retrying (or running) an invocation until resume(); it shows as 'paused'."""
        inv = self._get(invocation_id)
        if inv.completed or inv.status == "paused":
            return
        if inv.status in ("pending", "scheduled"):
            raise ValueError(f"{inv.id} has not started yet; cancel it instead, or let it start first")
        inv.status = "paused"
        inv.next_retry_at = None
        if inv.attempt is not None:
            inv.attempt.abort()  # the attempt ends; _on_attempt_end sees the pause and stays put

    def resume(self, invocation_id: str) -> None:
        """Start a paused invocation again from its journal."""
        inv = self._get(invocation_id)
        if inv.status != "paused":
            raise ValueError(f"{inv.id} is {inv.status}, not paused")
        if inv.attempt is None:
            self._start(inv)
        else:
            inv.status = "running"  # its aborted attempt is still winding down; restart when it has ended
            inv.resume_after_attempt = True

    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        """Complete an awakeable from a cell, as `POST /restate/awakeables/<id>/resolve` does. `value` is
        encoded as JSON (the SDK's default serde), bytes are sent as they are."""
        body = value if isinstance(value, (bytes, bytearray)) else restate.serde.JsonSerde().serialize(value)
        self._complete_awakeable(awakeable_id, {"value": messages.new("Value", content=bytes(body))})

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        """Fail an awakeable from a cell: the awaiting handler gets TerminalError(message, code)."""
        self._complete_awakeable(awakeable_id, {"failure": _failure_msg(Failure(code, message))})

    def _complete_awakeable(self, awakeable_id: str, result: dict[str, Any]) -> None:
        target, idx = self._parse_awakeable(awakeable_id)
        if idx == 0:
            raise ValueError(f"{awakeable_id!r} is not an awakeable id (they look like 'sign_1...')")
        if target is None:
            raise KeyError(f"no invocation in this runtime owns awakeable {awakeable_id!r}")
        self._signal(target, {"idx": idx}, result)

    def resolve_promise(self, workflow: str, key: str, name: str, value: Any = None) -> None:
        """Resolve a workflow's durable promise from a cell; a second resolution fails with 409, as in Restate."""
        body = value if isinstance(value, (bytes, bytearray)) else restate.serde.JsonSerde().serialize(value)
        self._complete_promise((workflow, key), name, bytes(body))

    def reject_promise(self, workflow: str, key: str, name: str, message: str, code: int = 500) -> None:
        self._complete_promise((workflow, key), name, Failure(code, message))

    # ------------------------------------------------------------------ creating invocations
    def _new_ids(self, derive: tuple[str, ...] | None) -> tuple[str, bytes, int]:
        if derive is not None:  # idempotent and workflow invocations get the same id each time, as in Restate
            digest = hashlib.sha256("\x00".join(derive).encode()).digest()
            raw = digest[:16]
            seed = int.from_bytes(digest[16:24], "big")
        else:
            raw = self._rng.getrandbits(128).to_bytes(16, "big")
            seed = self._rng.getrandbits(64)
        return _id_from(raw), raw, seed

    def _invoke(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None, delay_ms: int,
                invoked_by: Invocation | None, strict: bool) -> tuple[Invocation, bool, Failure | None]:
        """Create (or find, for idempotency keys and workflow runs) the invocation of `target`.

        Returns (invocation, previously_accepted, failure-for-a-call). Unknown targets raise TerminalError
        404 with Restate's ingress messages; `strict` is False for calls from handlers, where the callee's
        kind decides whether a key is used.
        """
        reg = self._services.get(target.service)
        if reg is None:
            raise restate.TerminalError(f"service '{target.service}' not found, make sure to register the service "
                                        f"before calling it.", 404)
        hinfo = reg.info.handlers.get(target.handler)
        if hinfo is None:
            raise restate.TerminalError(f"the service '{target.service}' exists, but the handler '{target.handler}' "
                                        f"was not found, check that the handler exists in the latest registered "
                                        f"service version.", 404)
        if reg.info.keyed and target.key is None:
            if strict:
                raise restate.TerminalError("bad path, expected either /:service-name/:handler or "
                                            "/:object-name/:object-key/:handler (a key is required)", 400)
            target = Target(target.service, target.handler, "")
        if not reg.info.keyed and target.key:
            raise restate.TerminalError(f"a key was provided, but the callee '{target.service}' is a Service", 400)
        if invoked_by is None and hinfo.ingress_private:
            raise restate.TerminalError(f"the handler '{target.service}/{target.handler}' is ingress-private: "
                                        f"only other handlers can call it", 400)
        if headers is not None and not isinstance(headers, dict):
            raise TypeError(f"headers must be a dict of str to str, not {type(headers).__name__}")
        if idem is not None and (not isinstance(idem, str) or not idem):
            raise ValueError("idempotency_key must be a non-empty str")

        key_s = target.key or ""
        if hinfo.ty == "WORKFLOW":
            existing = self._workflow_runs.get((target.service, key_s))
            if existing is not None:
                return (self._invocations[existing], True,
                        Failure(409, "the workflow method was already invoked"))
        idem_key = (target.service, key_s, target.handler, idem) if idem is not None else None
        if idem_key is not None and idem_key in self._idempotency:
            return self._invocations[self._idempotency[idem_key]], True, None

        derive = None
        if hinfo.ty == "WORKFLOW":
            derive = ("wf", target.service, key_s)
        elif idem_key is not None:
            derive = ("idem", *idem_key)
        inv_id, raw, seed = self._new_ids(derive)
        now = self._now()
        inv = Invocation(
            id=inv_id, target=target, service=reg.info, handler=hinfo, deployment=reg.deployment,
            revision=reg.revision, start_id=raw, random_seed=seed, created_at=now,
            invoked_by="service" if invoked_by else "ingress",
            invoked_by_id=invoked_by.id if invoked_by else None,
            invoked_by_target=str(invoked_by.target) if invoked_by else None,
            idempotency_key=idem, runtime=self,
        )
        inp = _INPUT()  # (setting fields is much cheaper than keyword construction on this hot path)
        inp.value.content = body
        for k, v in (headers or {}).items():
            inp.headers.add(key=k, value=v)
        inv.journal.append(JournalEntry(_M["Input"], inp, now))
        self._invocations[inv.id] = inv
        self._by_start_id[raw] = inv
        if hinfo.ty == "WORKFLOW":
            self._workflow_runs[(target.service, key_s)] = inv.id
        if idem_key is not None:
            self._idempotency[idem_key] = inv.id
        if delay_ms > 0:
            inv.status = "scheduled"
            inv.scheduled_at = now + delay_ms
            self._add_timer(now + delay_ms, lambda: self._enqueue(inv) if inv.status == "scheduled" else None,
                            f"delayed start of {inv.id} {target}")
        else:
            self._enqueue(inv)
        return inv, False, None

    def _enqueue(self, inv: Invocation) -> None:
        lk = inv.lock_key
        inv.status = "pending"
        if lk is None:
            self._start(inv)
            return
        inbox = self._inboxes.setdefault(lk, deque())
        if lk not in self._locks and not inbox:
            self._locks[lk] = inv.id
            self._wait.add(lk, inv.id, "holds")
            self._start(inv)
        else:
            inv.inboxed_at = self._now()
            inbox.append(inv)
            self._on_edge(self._wait.add(inv.id, lk, "queued"))

    def _release_lock(self, inv: Invocation) -> None:
        lk = inv.lock_key
        if lk is None or self._locks.get(lk) != inv.id:
            return
        del self._locks[lk]
        self._wait.remove(lk, inv.id)
        inbox = self._inboxes.get(lk)
        while inbox:
            nxt = inbox.popleft()
            if nxt.completed:
                continue
            self._locks[lk] = nxt.id
            self._wait.remove(nxt.id, lk)
            self._wait.add(lk, nxt.id, "holds")
            self._start(nxt)
            break

    # ------------------------------------------------------------------ attempts
    def _start(self, inv: Invocation) -> None:
        """Open a new attempt: send Start and the journal; the SDK's messages then arrive in _on_message."""
        self._progress += 1
        inv.status = "running"
        inv.attempts += 1
        inv.running_at = inv.running_at or self._now()
        inv.next_retry_at = None
        inv.awaiting = None  # what an earlier attempt awaited says nothing about this one
        lazy = inv.handler.lazy_state
        start = _START()
        start.id = inv.start_id
        start.debug_id = inv.id
        start.key = inv.target.key or ""
        start.random_seed = inv.random_seed
        start.retry_count_since_last_stored_entry = inv.retry_count_since_last_entry
        # the SDK measures RunOptions.max_duration with this (on the virtual clock here)
        start.duration_since_last_stored_entry = max(0, self._now() - inv.journal[-1].appended_at)
        start.partial_state = lazy
        if not lazy and inv.service.keyed:
            for k, v in self._state.get((inv.target.service, inv.target.key or ""), {}).items():
                start.state_map.add(key=k.encode(), value=v)
        attempt = inv.deployment.open(inv.target.service, inv.target.handler, [("x-restate-invocation-id", inv.id)])
        run = _AttemptRun(inv, attempt, len(inv.journal))
        attempt.on_message = lambda item: self._on_message(run, item)
        attempt.on_end = lambda ended: self._on_attempt_end(run, ended)
        attempt.on_waiting = self._touch
        inv.attempt = attempt
        inv.pending_runs = self._unfinished_runs(inv)
        self._live.add(inv)  # busy from now until the SDK blocks or the attempt ends
        attempt.start(start, [e.frame() for e in inv.journal])
        if self.mode == "always_suspend":
            attempt.close_input()

    def _on_message(self, run: "_AttemptRun", item: Received) -> None:
        """One message from the SDK, handled synchronously as the SDK sends it."""
        inv, attempt = run.inv, run.attempt
        self._last_activity = time.monotonic()
        if inv.completed or inv.killing:
            return  # killed (or already ended): nothing the SDK still sends counts
        name = item.name
        if name == "AwaitingOn":
            inv.awaiting = item.msg.awaiting_on
            return
        if run.terminal is not None and name != "ProposeRunCompletion":
            return  # nothing but late run proposals may follow a terminal message
        try:
            if name in ("End", "Suspension", "Error"):
                run.terminal = item
                attempt.close_input()
                if name == "End" and run.output is not None:
                    # complete now, as Restate does on End; the app winds down in the background
                    out = run.output
                    self._complete(inv, _failure_from(out.failure) if out.HasField("failure") else out.value.content)
                elif name == "Suspension":
                    inv.awaiting = item.msg.awaiting_on
            elif name == "ProposeRunCompletion":
                self._on_run_proposal(inv, attempt, item)
            elif messages.is_command(item.type_id):
                self._append(inv, item.type_id, item.msg)
                if name == "Output":
                    run.output = item.msg
                elif name == "Run":
                    inv.pending_runs.add(item.msg.result_completion_id)
                else:
                    self._on_command(inv, name, item.msg)
            else:
                raise _AttemptFailed(f"unexpected message {name} from the SDK")
        except _AttemptFailed as exc:
            run.broken = str(exc)
            attempt.abort()
        except Exception as exc:  # noqa: BLE001 - a runtime bug must fail the attempt, not the SDK's send()
            run.broken = f"the playground runtime failed handling {name}: {exc!r}"
            attempt.abort()

    def _on_attempt_end(self, run: "_AttemptRun", ended: AttemptEnded) -> None:
        inv = run.inv
        inv.attempt = None
        inv.pending_runs = _NO_RUNS
        self._live.discard(inv)
        self._touch()
        if inv.completed:
            return
        if inv.resume_after_attempt:  # resumed while its paused attempt was still winding down
            inv.resume_after_attempt = False
            self._start(inv)
            return
        if inv.status == "paused":
            return
        stored = len(inv.journal) > run.stored_before
        terminal = run.terminal
        if run.broken is None and terminal is None:
            err = ended.error
            run.broken = (f"the deployment ended the attempt without a result: {err!r}" if err else
                          "the deployment closed the stream without ending the invocation")
        if run.broken is not None:
            if not inv.completed:
                self._on_transient(inv, Failure(500, run.broken), None, stored, related=None)
        elif terminal is not None and terminal.name == "End":
            if run.output is None:
                self._on_transient(inv, Failure(571, "the SDK ended without an output"), None, stored, related=None)
        elif terminal is not None and terminal.name == "Suspension":
            self._on_suspended(inv, terminal.msg.awaiting_on, run.stored_before)
        elif terminal is not None:
            e = terminal.msg
            related = None
            if e.HasField("related_command_type"):
                related = f"{messages.entry_type(e.related_command_type)}"
                if e.HasField("related_command_name") and e.related_command_name:
                    related += f" {e.related_command_name!r}"
                if e.HasField("related_command_index"):
                    related += f" (command {e.related_command_index})"
                    if e.code == 570:
                        related = self._diverged(inv, e.related_command_index) or related
            delay = e.next_retry_delay if e.HasField("next_retry_delay") else None
            self._on_transient(inv, Failure(e.code, e.message), delay, stored, related, e.stacktrace)

    @staticmethod
    def _unfinished_runs(inv: Invocation) -> set[int]:
        started = {e.msg.result_completion_id for e in inv.journal if e.type_id == _M["Run"]}
        done = {e.msg.completion_id for e in inv.journal if e.type_id == _M["RunCompletion"]}
        return started - done

    def _append(self, inv: Invocation, type_id: int, msg: Any) -> JournalEntry:
        entry = JournalEntry(type_id, msg, self._now())
        inv.journal.append(entry)
        return entry

    def _deliver(self, inv: Invocation, kind: str, /, **fields: Any) -> None:
        """Store a notification in the journal and hand it to the live attempt, or wake a suspended invocation."""
        if inv.completed or inv.killing:
            return  # e.g. a killed caller: its journal takes no new entries
        self._progress += 1
        msg = messages.new(kind, **fields)
        self._append(inv, _M[kind], msg)
        attempt = inv.attempt
        if attempt is not None and attempt.notify(msg):
            inv.journal[-1].seen_by_attempt = inv.attempts  # the SDK wakes up; busy until it blocks again
        elif inv.status == "suspended" and self._wakes(inv, msg):
            self._resume(inv)

    @staticmethod
    def _wakes(inv: Invocation, msg: Any) -> bool:
        if inv.waiting_ids is None:
            return False
        completions, signals, named = inv.waiting_ids
        if msg.DESCRIPTOR.name == "Signal":
            kind = msg.WhichOneof("signal_id")
            return (msg.idx in signals) if kind == "idx" else (msg.name in named)
        return getattr(msg, "completion_id", None) in completions

    def _on_suspended(self, inv: Invocation, fut: Any, stored_before: int) -> None:
        completions: set[int] = set()
        signals: set[int] = set()
        named: set[str] = set()

        def walk(f: Any) -> None:
            completions.update(f.waiting_completions)
            signals.update(f.waiting_signals)
            named.update(f.waiting_named_signals)
            for n in f.nested_futures:
                walk(n)

        walk(fut)
        inv.waiting_ids = (completions, signals, named)
        inv.status = "suspended"
        # Something awaited may be stored already without the attempt having seen it (a run proposal stored
        # after the input closed; anything stored while it ran with a closed input, as in always_suspend).
        # What the attempt did see cannot be what it still waits for (e.g. a second await on one signal).
        attempt_no = inv.attempts
        if any(self._wakes(inv, e.msg) for e in inv.journal[stored_before:]
               if messages.is_notification(e.type_id) and e.seen_by_attempt != attempt_no):
            self._resume(inv)

    def _resume(self, inv: Invocation) -> None:
        inv.waiting_ids = None
        self._start(inv)

    def _on_run_proposal(self, inv: Invocation, attempt: Attempt, item: Received) -> None:
        msg = item.msg
        cid = msg.result_completion_id
        inv.pending_runs.discard(cid)
        fields: dict[str, Any] = ({"failure": msg.failure} if msg.WhichOneof("result") == "failure"
                                  else {"value": messages.new("Value", content=msg.value)})
        notif = messages.new("RunCompletion", completion_id=cid, **fields)
        self._append(inv, _M["RunCompletion"], notif)
        if item.flags & framing.REQUESTED_ACK:
            attempt.notify(messages.new("ProposeRunCompletionAck", completion_id=cid))
        else:
            attempt.notify(notif)

    def _on_transient(self, inv: Invocation, failure: Failure, retry_delay: int | None, stored: bool,
                      related: str | None, stacktrace: str = "") -> None:
        now = self._now()
        err = TransientError(inv.attempts, len(inv.journal) - 1, now, failure.code, failure.message, stacktrace, related)
        inv.errors.append(err)
        inv.last_failure = err
        inv.retry_count_since_last_entry = 1 if stored else inv.retry_count_since_last_entry + 1
        policy = inv.handler.retry
        if policy.max_attempts is not None and inv.attempts >= policy.max_attempts:
            if policy.on_max_attempts == "kill":
                self._complete(inv, failure)
            else:
                inv.status = "paused"
                self._touch()
            return
        delay = retry_delay if retry_delay is not None else policy.delay_ms(inv.attempts)
        inv.status = "backing-off"
        inv.next_retry_at = now + delay
        self._add_timer(now + delay, lambda: self._start(inv) if inv.status == "backing-off" else None,
                        f"retry of {inv.id} {inv.target}")

    def _complete(self, inv: Invocation, result: bytes | Failure) -> None:
        self._progress += 1
        now = self._now()
        inv.completed = True
        inv.result = result
        inv.status = "completed"
        inv.completed_at = now
        inv.awaiting = None
        self._release_lock(inv)
        callers, waiters = inv.callers, inv.waiters
        inv.callers = inv.waiters = _DONE  # a completed invocation keeps no wait lists (it may be retained a day)
        self._wait.remove_all_from(inv.id)
        for caller, cid, kind in callers:
            self._wait.remove(caller.id, inv.id)
            name = "CallCompletion" if kind == "call" else "AttachInvocationCompletion"
            self._deliver(caller, name, completion_id=cid, **_value_or_failure(result))
        self._sleepers.difference_update(waiters)  # woken here: no idle check needed on their behalf
        self._wake(waiters)  # type: ignore[arg-type]
        self._touch()
        # Completed invocations are kept for a retention period, then purged as Restate does: workflow runs
        # with their workflow's state, idempotent ones with their key, the rest after the journal retention.
        if inv.handler.ty == "WORKFLOW":
            self._add_expiry(inv.handler.workflow_retention_ms or DAY_MS, lambda: self._expire_workflow(inv),
                             "workflow retention")
        elif inv.idempotency_key is not None:
            idem = (inv.target.service, inv.target.key or "", inv.target.handler, inv.idempotency_key)
            self._add_expiry(inv.handler.idempotency_retention_ms or DAY_MS,
                             lambda: self._expire_idempotency(idem, inv.id), "idempotency retention")
        else:
            self._add_expiry(inv.handler.journal_retention_ms or DAY_MS, lambda: self._forget(inv.id),
                             "journal retention")

    def _expire_idempotency(self, idem: tuple[str, str, str, str], inv_id: str) -> None:
        if self._idempotency.get(idem) == inv_id:
            del self._idempotency[idem]
            self._forget(inv_id)

    def _expire_workflow(self, inv: Invocation) -> None:
        wk = (inv.target.service, inv.target.key or "")
        if self._workflow_runs.get(wk) != inv.id:
            return
        del self._workflow_runs[wk]
        self._state.pop(wk, None)
        self._promises.pop(wk, None)
        self._forget(inv.id)

    def _forget(self, inv_id: str) -> None:
        inv = self._invocations.get(inv_id)
        if inv is None or not inv.completed:
            return
        del self._invocations[inv_id]
        if self._by_start_id.get(inv.start_id) is inv:
            del self._by_start_id[inv.start_id]

    def _cancel(self, inv: Invocation) -> None:
        if inv.completed:
            return
        if inv.status in ("pending", "scheduled") and inv.attempts == 0:
            inv.status = "completed"  # keeps a delayed start from firing; the inbox skips completed entries
            self._complete(inv, Failure(409, "canceled"))
            return
        self._deliver(inv, "Signal", idx=messages.CANCEL_SIGNAL, void=messages.new("Void"))
        # The signal makes its current await fail at once: it no longer waits on anything, so a cycle
        # through it is broken now, not only when it has finished.
        self._wait.remove_all_from(inv.id)
        if inv.status in ("paused", "backing-off") and inv.attempt is None:
            self._start(inv)  # run now, so the handler sees the cancellation at once

    def _kill(self, inv: Invocation) -> None:
        if inv.completed or inv.killing:
            return
        # Stop it first (no more notifications reach its handler code), then kill what it waits on, then
        # complete it: its lock is released only after a call queued behind it has been killed, so that
        # call never starts.
        inv.killing = True
        if inv.attempt is not None:
            inv.attempt.abort()
        for child in self._pending_callees(inv):
            self._kill(child)
        self._complete(inv, Failure(409, "killed"))

    def _pending_callees(self, inv: Invocation) -> list[Invocation]:
        """Invocations that `inv` called (request-response) and still waits for."""
        answered = {e.msg.completion_id for e in inv.journal if e.type_id == _M["CallCompletion"]}
        out = []
        for e in inv.journal:
            if e.type_id == _M["Call"] and e.msg.result_completion_id not in answered:
                child = self._invocations.get(self._call_target_id(inv, e.msg) or "")
                if child is not None:
                    out.append(child)
        return out

    @staticmethod
    def _diverged(inv: Invocation, command_index: int) -> str | None:
        """For a journal mismatch (570): the stored entry the new code path diverged from."""
        from ..introspect import describe_entry
        commands = [(i, e) for i, e in enumerate(inv.journal) if messages.is_command(e.type_id)]
        if command_index >= len(commands):
            return None
        i, e = commands[command_index]
        return f"journal entry {i}, which recorded {describe_entry(e)}"

    # ------------------------------------------------------------------ commands
    def _on_command(self, inv: Invocation, name: str, msg: Any) -> None:
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is not None:
            handler(inv, msg)

    def _state_of(self, inv: Invocation) -> dict[str, bytes]:
        return self._state.setdefault((inv.target.service, inv.target.key or ""), {})

    def _cmd_SetState(self, inv: Invocation, msg: Any) -> None:
        self._state_of(inv)[msg.key.decode()] = msg.value.content

    def _cmd_ClearState(self, inv: Invocation, msg: Any) -> None:
        self._state_of(inv).pop(msg.key.decode(), None)

    def _cmd_ClearAllState(self, inv: Invocation, msg: Any) -> None:
        self._state_of(inv).clear()

    def _cmd_GetLazyState(self, inv: Invocation, msg: Any) -> None:
        value = self._state_of(inv).get(msg.key.decode())
        result = {"void": messages.new("Void")} if value is None else {"value": messages.new("Value", content=value)}
        self._deliver(inv, "GetLazyStateCompletion", completion_id=msg.result_completion_id, **result)

    def _cmd_GetLazyStateKeys(self, inv: Invocation, msg: Any) -> None:
        keys = [k.encode() for k in sorted(self._state_of(inv))]
        self._deliver(inv, "GetLazyStateKeysCompletion", completion_id=msg.result_completion_id,
                      state_keys=messages.new("StateKeys", keys=keys))

    def _delay_for(self, inv: Invocation, kind: str, absolute_ms: int) -> int:
        """The exact delay the SDK was asked for (recorded by sdk_hooks), else estimated from the wall clock."""
        attempt = inv.attempt
        if attempt is not None and attempt.delays and attempt.delays[0][0] == kind:
            return attempt.delays.popleft()[1]
        if absolute_ms == 0:
            return 0
        return max(0, absolute_ms - int(time.time() * 1000))

    def _cmd_Sleep(self, inv: Invocation, msg: Any) -> None:
        cid = msg.result_completion_id
        wake = self._now() + self._delay_for(inv, "sleep", msg.wake_up_time)
        inv.journal[-1].due_ms = wake
        self._add_timer(wake, lambda: self._deliver(inv, "SleepCompletion", completion_id=cid,
                                                    void=messages.new("Void")),
                        f"sleep of {inv.id} {inv.target}")

    def _child(self, inv: Invocation, msg: Any, delay_ms: int) -> tuple[Invocation, bool, Failure | None]:
        target = Target(msg.service_name, msg.handler_name, msg.key or None)
        headers = {h.key: h.value for h in msg.headers}
        idem = msg.idempotency_key if msg.HasField("idempotency_key") else None
        try:
            return self._invoke(target, msg.parameter, headers, idem, delay_ms, invoked_by=inv, strict=False)
        except restate.TerminalError as exc:
            # Restate keeps retrying such a caller until the target appears (or it is killed).
            raise _AttemptFailed(f"cannot call {target}: {exc.message}") from None

    def _cmd_Call(self, inv: Invocation, msg: Any) -> None:
        child, _previous, failure = self._child(inv, msg, 0)
        self._deliver(inv, "CallInvocationIdCompletion", completion_id=msg.invocation_id_notification_idx,
                      invocation_id=child.id)
        cid = msg.result_completion_id
        if failure is not None:
            self._deliver(inv, "CallCompletion", completion_id=cid, failure=_failure_msg(failure))
        elif child.completed:
            self._deliver(inv, "CallCompletion", completion_id=cid, **_value_or_failure(child.result or b""))
        else:
            child.callers.append((inv, cid, "call"))
            self._on_edge(self._wait.add(inv.id, child.id, "call"))

    def _cmd_OneWayCall(self, inv: Invocation, msg: Any) -> None:
        delay = self._delay_for(inv, "send", msg.invoke_time)
        child, previous, _failure = self._child(inv, msg, delay)
        child.sent = child.sent or not previous
        inv.journal[-1].due_ms = self._now() + delay
        self._deliver(inv, "CallInvocationIdCompletion", completion_id=msg.invocation_id_notification_idx,
                      invocation_id=child.id)

    def _cmd_SendSignal(self, inv: Invocation, msg: Any) -> None:
        target = self._invocations.get(msg.target_invocation_id)
        if target is None or target.completed:
            return
        if msg.WhichOneof("signal_id") == "idx" and msg.idx == messages.CANCEL_SIGNAL:
            self._cancel(target)
            return
        which = msg.WhichOneof("signal_id") or "idx"
        result = msg.WhichOneof("result") or "void"
        self._signal(target, {which: getattr(msg, which)}, {result: getattr(msg, result)})

    def _cmd_CompleteAwakeable(self, inv: Invocation, msg: Any) -> None:
        target, idx = self._parse_awakeable(msg.awakeable_id)
        if target is None:
            return
        result = msg.WhichOneof("result")
        self._signal(target, {"idx": idx}, {result: getattr(msg, result)})

    def _signal(self, target: Invocation, signal_id: dict[str, Any], result: dict[str, Any]) -> None:
        """Deliver an awakeable completion or a named signal once: as in Restate, completing one again is
        accepted and ignored. Signals sent before the target asks for them wait in its journal."""
        key = next(iter(signal_id.items()))
        for e in target.journal:
            if e.type_id == _M["Signal"] and (e.msg.WhichOneof("signal_id"), getattr(e.msg, key[0])) == key:
                return
        self._deliver(target, "Signal", **signal_id, **result)

    def _parse_awakeable(self, awakeable_id: str) -> tuple[Invocation | None, int]:
        if not awakeable_id.startswith("sign_1"):
            return None, 0
        raw = awakeable_id[len("sign_1"):]
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            return None, 0
        return self._by_start_id.get(data[:-4]), int.from_bytes(data[-4:], "big")

    def _resolve_attach_target(self, msg: Any) -> Invocation | None:
        which = msg.WhichOneof("target")
        if which == "invocation_id":
            return self._invocations.get(msg.invocation_id)
        if which == "workflow_target":
            t = msg.workflow_target
            return self._invocations.get(self._workflow_runs.get((t.workflow_name, t.workflow_key), ""))
        if which == "idempotent_request_target":
            t = msg.idempotent_request_target
            key = (t.service_name, t.service_key if t.HasField("service_key") else "", t.handler_name, t.idempotency_key)
            return self._invocations.get(self._idempotency.get(key, ""))
        return None

    def _cmd_AttachInvocation(self, inv: Invocation, msg: Any) -> None:
        target = self._resolve_attach_target(msg)
        cid = msg.result_completion_id
        if target is None:
            self._deliver(inv, "AttachInvocationCompletion", completion_id=cid,
                          failure=_failure_msg(Failure(404, "not found")))
        elif target.completed:
            self._deliver(inv, "AttachInvocationCompletion", completion_id=cid, **_value_or_failure(target.result or b""))
        else:
            target.callers.append((inv, cid, "attach"))
            self._on_edge(self._wait.add(inv.id, target.id, "attach"))

    def _cmd_GetInvocationOutput(self, inv: Invocation, msg: Any) -> None:
        target = self._resolve_attach_target(msg)
        cid = msg.result_completion_id
        if target is None or not target.completed:
            self._deliver(inv, "GetInvocationOutputCompletion", completion_id=cid, void=messages.new("Void"))
        else:
            self._deliver(inv, "GetInvocationOutputCompletion", completion_id=cid,
                          **_value_or_failure(target.result or b""))

    def _promises_of(self, inv: Invocation) -> dict[str, bytes | Failure]:
        return self._promises.setdefault((inv.target.service, inv.target.key or ""), {})

    def _cmd_GetPromise(self, inv: Invocation, msg: Any) -> None:
        done = self._promises_of(inv).get(msg.key)
        if done is not None:
            self._deliver(inv, "GetPromiseCompletion", completion_id=msg.result_completion_id, **_value_or_failure(done))
        else:
            wk = (inv.target.service, inv.target.key or "", msg.key)
            self._promise_waiters.setdefault(wk, []).append((inv, msg.result_completion_id))

    def _cmd_PeekPromise(self, inv: Invocation, msg: Any) -> None:
        done = self._promises_of(inv).get(msg.key)
        result = {"void": messages.new("Void")} if done is None else _value_or_failure(done)
        self._deliver(inv, "PeekPromiseCompletion", completion_id=msg.result_completion_id, **result)

    def _cmd_CompletePromise(self, inv: Invocation, msg: Any) -> None:
        value: bytes | Failure = (_failure_from(msg.completion_failure) if msg.WhichOneof("completion") ==
                                  "completion_failure" else msg.completion_value.content)
        try:
            self._complete_promise((inv.target.service, inv.target.key or ""), msg.key, value)
            result: dict[str, Any] = {"void": messages.new("Void")}
        except restate.TerminalError as exc:
            result = {"failure": _failure_msg(Failure(exc.status_code, exc.message))}
        self._deliver(inv, "CompletePromiseCompletion", completion_id=msg.result_completion_id, **result)

    def _complete_promise(self, wk: tuple[str, str], name: str, value: bytes | Failure) -> None:
        table = self._promises.setdefault(wk, {})
        if name in table:
            raise restate.TerminalError("promise was already completed", 409)
        table[name] = value
        self._progress += 1
        for waiter, wcid in self._promise_waiters.pop((*wk, name), []):
            self._deliver(waiter, "GetPromiseCompletion", completion_id=wcid, **_value_or_failure(value))

    # ------------------------------------------------------------------ introspection
    def invocations(self) -> Any:
        from .. import introspect
        return introspect.invocations(self)

    def journal(self, invocation_id: str) -> Any:
        from .. import introspect
        return introspect.journal(self, self._get(invocation_id))

    def state(self, service: str, key: str) -> dict[str, Any]:
        """The K/V state of one object or workflow, JSON values decoded (raw bytes where not JSON)."""
        from .. import introspect
        return introspect.decode_state(self._state.get((service, key), {}))

    def inbox(self) -> Any:
        """Invocations queued for a key's lock, in order (Restate's sys_inbox)."""
        from .. import introspect
        return introspect.inbox(self)

    def sql(self, query: str) -> Any:
        """Run SQL over Restate-shaped tables (sys_invocation, sys_journal, state, sys_inbox, sys_idempotency,
        sys_promise, sys_keyed_service_status, sys_service, sys_journal_events), as `restate sql` does."""
        from .. import introspect
        return introspect.sql(self, query)

    def invocation(self, invocation_id: str) -> Invocation:
        return self._get(invocation_id)

    def _all_invocations(self) -> Iterable[Invocation]:
        return self._invocations.values()

    def _repr_html_(self) -> str:
        from .. import render
        return render.runtime_html(self)

    def dashboard(self) -> Any:
        """Every view in one live widget: clock, invocations and journals, call graph, timeline, deadlocks."""
        from ..widgets import Dashboard
        return Dashboard(self)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for inv in self._invocations.values():
            counts[inv.status] = counts.get(inv.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no invocations"
        return (f"<playground.Runtime {self._clock.kind} clock at {self.now.isoformat()}; "
                f"services: {', '.join(self._services) or 'none'}; {summary}>")


class _AttemptRun:
    """What one attempt has seen so far."""

    __slots__ = ("inv", "attempt", "stored_before", "terminal", "output", "broken")

    def __init__(self, inv: Invocation, attempt: Attempt, stored_before: int) -> None:
        self.inv, self.attempt, self.stored_before = inv, attempt, stored_before
        self.terminal: Received | None = None
        self.output: Any = None
        self.broken: str | None = None


class _AttemptFailed(Exception):
    """A command the runtime cannot honour: the attempt fails and is retried, as Restate does."""
