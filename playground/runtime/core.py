"""The embedded Restate server: it owns invocations, journals, per-key locks and inboxes, state, timers,
idempotency and workflow records, and drives each attempt of the SDK's app over the service protocol.

Everything happens on the caller's event loop. An attempt is "busy" until the SDK is blocked on the
runtime: its VM asked to wait for external progress (observed by sdk_hooks), every message it sent has
been handled, and no ctx.run closure is executing. When no attempt is busy and no timer is due, nothing
can progress at the current time. That is the point where the virtual clock may jump to
the next timer, where `settle()` returns, and where an ingress await that is still waiting raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import restate

from ..errors import Deadlock
from ..protocol import messages, sdk_hooks
from ..protocol.deployment import AsgiDeployment, HandlerInfo, ServiceInfo, parse_manifest
from . import ids
from .attempts import Attempts
from .clock import check_due, make_clock, to_datetime
from .commands import Commands
from .common import (
    DAY_MS,
    INPUT_MESSAGE,
    TYPE_IDS,
    Registered,
    check_request,
    duration_ms,
    value_or_failure,
)
from .explain import Explainer
from .faults import Faults
from .ingress import Ingress
from .interrupts import sigint_guard
from .journal import answered_completion_ids, awaited, call_target_id
from .keys import Keys
from .model import (
    DONE,
    Failure,
    Invocation,
    JournalEntry,
    Target,
    TransientError,
    status_counts,
)
from .records import Records
from .recovery import Recovery
from .registry import Registry
from .scheduler import Scheduler
from .store import open_store
from .timers import Timers
from .waitfor import WaitForGraph
from .waiting import Waiter


class Engine(Ingress):
    """The embedded Restate server: everything but the views (pg.Runtime, in playground.facade, adds those)."""

    def __init__(self, *services: Any, clock: str = "virtual", start: datetime | None = None, seed: int = 0,
                 mode: str = "normal", store: Any = None) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int (it fixes the invocation ids), not {type(seed).__name__}")
        if mode not in ("normal", "always_suspend"):
            raise ValueError(f"mode must be 'normal' or 'always_suspend', not {mode!r}")
        # always_suspend: every attempt gets its journal and then a closed request body, so the SDK suspends
        # at each await on something new and resumes by replay (Restate's inactivity-timeout-0 setting)
        self.mode = mode
        sdk_hooks.install()
        self._clock = make_clock(clock, start)
        self._seed = seed
        # decides the order of events where Restate leaves it open (default: as the engine posts them)
        self.scheduler = Scheduler()
        self._seeded_ids = ids.SeededIds(seed)  # plain invocations' ids (a restore continues the sequence)
        self._registry = Registry()  # the services this engine knows (see registry.py)
        # what changed in the current event, written to the store when it ends (see recovery.py)
        self._dirty: set[Invocation] = set()
        self._dirty_state: set[tuple[str, str]] = set()
        self._dirty_promises: set[tuple[str, str]] = set()
        self._dirty_services: set[str] = set()
        self._to_start: list[Invocation] = []  # restored invocations to start once a loop runs
        self._closed: str | None = None
        self._store_failure: str | None = None  # why the store could not be written (the runtime then stops)
        self._keys = Keys(WaitForGraph())  # locks and inboxes (see keys.py)
        self._attempts = Attempts(self)  # the attempts in flight and what the SDK sends them (see attempts.py)
        self._commands = Commands(self)  # what each stored command does (see commands.py)
        self._explainer = Explainer(self)  # why an await cannot finish (see explain.py)
        self._waiter = Waiter(self)  # idleness, time skipping, awaits that raise instead of hanging (waiting.py)
        self._timers = Timers(self._clock, self.scheduler, lambda: self._commit(), lambda: self._closed is not None)
        self._reset_tables()
        self.faults = Faults(self)
        self._progress = 0  # bumped by every delivery, start and completion: "did anything happen?"
        self._recovery = Recovery(self)  # the store's change sets, close, restart, restore (see recovery.py)
        self._commit: Callable[[], None] = lambda: None  # ends an event (bound to the store just below)
        self._store = open_store(store, self)
        self._recovery.bind_store()
        snapshot = self._store.load()
        commit, self._commit = self._commit, lambda: None  # nothing is written before the records are restored
        try:
            if services:
                self.register(*services)
            if snapshot is not None:
                self._recovery.restore_stored(snapshot)  # a record it cannot use: StoreError, the file untouched
        finally:
            self._commit = commit
        self._commit()  # a new store starts with the clock and the services

    def _reset_tables(self) -> None:
        """The in-memory tables, empty (at construction, and before a restore from the store)."""
        self._timers.clear()
        self._invocations: dict[str, Invocation] = {}
        self._by_start_id: dict[bytes, Invocation] = {}
        self._state: dict[tuple[str, str], dict[str, bytes]] = {}
        self._records = Records()  # idempotency keys, workflow runs, promises (see records.py)
        self._wait = WaitForGraph()
        self._keys.clear(self._wait)
        self._attempts.clear()
        # invocations whose last attempt failed on a call or send Restate cannot route: the target it named
        self._rejected_calls: dict[str, Target] = {}

    # ------------------------------------------------------------------ registration
    def register(self, *services: Any) -> None:
        """Register services (a new revision for a name seen before: new invocations use it, running ones keep
        theirs)."""
        if not services:
            raise ValueError("register() needs at least one restate.Service, VirtualObject or Workflow")
        names: set[str] = set()
        for s in services:
            if not isinstance(s, (restate.Service, restate.VirtualObject, restate.Workflow)):
                what = getattr(s, "__name__", type(s).__name__)
                hint = (" (pass the service object that the handler was declared on, not the handler)"
                        if callable(s) else "")
                raise TypeError(f"register() takes restate.Service, VirtualObject or Workflow objects; "
                                f"got {what}{hint}")
            if not s.name:
                raise ValueError("a service needs a non-empty name, e.g. restate.Service('Greeter')")
            if s.name in names:
                raise ValueError(f"two services named {s.name!r} in one register() call")
            names.add(s.name)
        if self._closed is not None:
            self._recovery.check_open()
        deployment = AsgiDeployment(restate.app(services=list(services)))
        manifest = deployment.discover()
        infos = parse_manifest(manifest)
        for s in services:
            self._registry.add_revision(s, infos[s.name], deployment,
                                        next(m for m in manifest["services"] if m["name"] == s.name))
            self._dirty_services.add(s.name)
        self._recovery.rebind(names)
        self._commit()

    def services(self) -> dict[str, ServiceInfo]:
        return {name: reg.info for name, reg in self._registry.services.items()}

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

    def _fire_due_timers(self) -> bool:
        return self._timers.fire_due()

    async def advance(self, delta: timedelta) -> None:
        """Move virtual time forward, firing every timer due on the way in order, and settle."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        self._clock.check_movable("advance()")
        if not isinstance(delta, timedelta):
            raise TypeError(f"advance() takes a datetime.timedelta, e.g. timedelta(hours=1), not "
                            f"{type(delta).__name__}")
        target = check_due(self._now() + duration_ms(delta, "advance()'s delta"), "advance()")
        seen = len(self._waiter.interrupts)
        with sigint_guard:
            await self._waiter.quiesce(seen=seen)
            while (nxt := self._timers.next_due()) is not None and nxt.due_ms <= target:
                self._clock.set(nxt.due_ms)
                await self._waiter.quiesce(seen=seen)
            self._clock.set(target)
            await self._waiter.quiesce(seen=seen)
        self._commit()  # the clock, too, is durable

    async def settle(self) -> None:
        """Run until nothing can progress at the current time (time itself does not move)."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        with sigint_guard:
            await self._waiter.quiesce()

    # ------------------------------------------------------------------ creating invocations
    def _new_ids(self, target: Target, key: str | None, idem: str | None, workflow_run: bool) -> tuple[str, bytes, int]:
        """The id, raw id (Start.id) and random seed of a new invocation: derived as restate-server derives
        them for workflow runs and idempotent invocations, else from the seeded generator (see ids.py)."""
        if not workflow_run and idem is None:
            return self._seeded_ids.next(target.service, key)
        iid = ids.derived(target.service, key, target.handler, idem, workflow_run)
        assert iid is not None
        raw = iid.to_bytes()
        return str(iid), raw, int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")

    def _routable(self, target: Target, invoked_by: Invocation | None,
                  strict: bool) -> tuple[Registered, HandlerInfo, Target]:
        """The registration and handler `target` names, and the target as invoked (a keyed callee called
        without a key from a handler gets the empty key); Restate's ingress errors when it cannot be."""
        reg = self._registry.get(target.service)
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
            raise restate.TerminalError("the invoked service is not public", 400)  # Restate's ingress wording
        return reg, hinfo, target

    def _invoke(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None, delay_ms: int,
                invoked_by: Invocation | None, strict: bool) -> tuple[Invocation, bool, Failure | None]:
        """Create (or find, for idempotency keys and workflow runs) the invocation of `target`.

        Returns (invocation, previously_accepted, failure-for-a-call). Unknown targets raise TerminalError
        404 with Restate's ingress messages; `strict` is False for calls from handlers, where the callee's
        kind decides whether a key is used.
        """
        if self._closed is not None:
            self._recovery.check_open()
        check_request(target, headers, idem)
        if delay_ms > 0:
            check_due(self._now() + delay_ms, "send_delay")
        reg, hinfo, target = self._routable(target, invoked_by, strict)
        key_s = target.key or ""
        if hinfo.ty == "WORKFLOW":
            existing = self._records.run_of((target.service, key_s))
            if existing is not None:
                return (self._invocations[existing], True,
                        Failure(409, "the workflow method was already invoked"))
        idem_key = (target.service, key_s, target.handler, idem) if idem is not None else None
        seen = self._records.idempotent(idem_key) if idem_key is not None else None
        if seen is not None:
            return self._invocations[seen], True, None

        inv_id, raw, seed = self._new_ids(target, target.key if reg.info.keyed else None, idem,
                                          hinfo.ty == "WORKFLOW")
        now = self._now()
        inv = Invocation(
            id=inv_id, target=target, service=reg.info, handler=hinfo, deployment=reg.deployment,
            revision=reg.revision, start_id=raw, random_seed=seed, created_at=now,
            invoked_by="service" if invoked_by else "ingress",
            invoked_by_id=invoked_by.id if invoked_by else None,
            invoked_by_target=str(invoked_by.target) if invoked_by else None,
            idempotency_key=idem, runtime=self,
        )
        inp = INPUT_MESSAGE()  # (setting fields is much cheaper than keyword construction on this hot path)
        inp.value.content = body
        for k, v in (headers or {}).items():
            inp.headers.add(key=k, value=v)
        inv.journal.append(JournalEntry(TYPE_IDS["Input"], inp, now))
        self._dirty.add(inv)
        self._invocations[inv.id] = inv
        self._by_start_id[raw] = inv
        if hinfo.ty == "WORKFLOW":
            self._records.remember_workflow_run((target.service, key_s), inv.id)
        if idem_key is not None:
            self._records.remember_idempotent(idem_key, inv.id)
        if delay_ms > 0:
            inv.status = "scheduled"
            inv.scheduled_at = now + delay_ms
            self._schedule_start(inv)
        elif self.scheduler.eager:  # the default strategy: as posted (checked here to keep the hot path lean)
            self._enqueue(inv)
        else:  # one FIFO per sender: a handler's sends to a key keep their order, others may interleave
            self.scheduler.post(invoked_by.id if invoked_by is not None else "ingress", f"enqueue {inv.id}",
                                lambda: None if inv.completed else self._enqueue(inv))
        return inv, False, None

    def _schedule_start(self, inv: Invocation) -> None:
        assert inv.scheduled_at is not None
        self._add_timer(inv.scheduled_at, lambda: self._enqueue(inv) if inv.status == "scheduled" else None,
                        f"delayed start of {inv.id} {inv.target}")

    def _schedule_sleep(self, inv: Invocation, cid: int, wake_ms: int) -> None:
        self._add_timer(wake_ms, lambda: self._deliver(inv, "SleepCompletion", completion_id=cid,
                                                       void=messages.new("Void")),
                        f"sleep of {inv.id} {inv.target}")

    def _schedule_retry(self, inv: Invocation) -> None:
        assert inv.next_retry_at is not None
        self._add_timer(inv.next_retry_at, lambda: self._start(inv) if inv.status == "backing-off" else None,
                        f"retry of {inv.id} {inv.target}")

    def _schedule_expiry(self, inv: Invocation) -> None:
        """Completed invocations are kept for a retention period, then purged as Restate does: workflow runs
        with their workflow's state, idempotent ones with their key, the rest after the journal retention."""
        assert inv.completed_at is not None and inv.expires_at is not None
        action: Callable[[], None]
        if inv.handler.ty == "WORKFLOW":
            action, what = partial(self._expire_workflow, inv), "workflow retention"
        elif inv.idempotency_key is not None:
            idem = (inv.target.service, inv.target.key or "", inv.target.handler, inv.idempotency_key)
            action, what = partial(self._expire_idempotency, idem, inv.id), "idempotency retention"
        else:  # (a partial, not a closure: fewer objects for the garbage collector, kept a day per invocation)
            action, what = partial(self._forget, inv.id), "journal retention"
        # a housekeeping timer: it fires when time passes, but never makes time skip
        self._timers.add_housekeeping(inv.completed_at, inv.expires_at - inv.completed_at, action, what)

    def _enqueue(self, inv: Invocation) -> None:
        lk = inv.lock_key
        self._dirty.add(inv)
        inv.status = "pending"
        if lk is None:
            self._start(inv)
            return
        took, cycle = self._keys.take_or_queue(inv, lk, self._now())
        if took:
            self._start(inv)
        else:
            self._waiter.on_edge(cycle)

    def _release_lock(self, inv: Invocation) -> None:
        nxt = self._keys.release(inv)
        if nxt is not None:
            self._start(nxt)

    # ------------------------------------------------------------------ attempts
    def _start(self, inv: Invocation) -> None:
        """Start `inv`'s next attempt: now (the default strategy), or when the scheduler's strategy picks it
        among the runnable attempts of different invocations."""
        if not self.scheduler.eager:
            self.scheduler.post(("start", inv.id), f"start {inv.id}",
                                lambda: None if inv.completed or inv.attempt is not None else self._attempts.open(inv))
            return
        self._attempts.open(inv)

    def _append(self, inv: Invocation, type_id: int, msg: Any) -> JournalEntry:
        entry = JournalEntry(type_id, msg, self._now())
        inv.journal.append(entry)
        self._dirty.add(inv)
        return entry

    def _deliver(self, inv: Invocation, kind: str, /, **fields: Any) -> None:
        """Store a notification in the journal and hand it to the live attempt, or wake a suspended invocation."""
        if inv.completed or inv.killing:
            return  # e.g. a killed caller: its journal takes no new entries
        self._progress += 1
        msg = messages.new(kind, **fields)
        self._append(inv, TYPE_IDS[kind], msg)
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
        completions, signals, named = awaited(fut)
        inv.waiting_ids = (set(completions), set(signals), set(named))
        inv.status = "suspended"
        self._dirty.add(inv)
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

    def _on_transient(self, inv: Invocation, failure: Failure, retry_delay: int | None, stored: bool,
                      related: str | None, stacktrace: str = "", behavior: int = messages.ERROR_RETRY,
                      pause: bool = False, related_fields: tuple[Any, Any, Any] = (None, None, None)) -> None:
        """Record a failed attempt, then retry by the policy; an SDK's Error.behavior (V7) of PAUSE or FAIL
        takes precedence, as Restate's invoker gives it: pause now, or fail now as on_max_attempts='kill'.
        `pause`: the attempt was cut off by the user's interrupt, which pauses the invocation."""
        now = self._now()
        self._dirty.add(inv)
        err = TransientError(inv.attempts, len(inv.journal) - 1, now, failure.code, failure.message, stacktrace,
                             related, *related_fields)
        inv.record_error(err)
        inv.retry_count_since_last_entry = 1 if stored else inv.retry_count_since_last_entry + 1
        policy = inv.handler.retry
        if pause:
            inv.status = "paused"
            self._waiter.touch()
            return
        exhausted = policy.max_attempts is not None and inv.attempts >= policy.max_attempts
        fail_now, pause_now = behavior == messages.ERROR_FAIL, behavior == messages.ERROR_PAUSE
        if exhausted or fail_now or pause_now:
            if fail_now or (not pause_now and policy.on_max_attempts == "kill"):
                self._complete(inv, failure)
            else:
                inv.status = "paused"
                self._waiter.touch()
            return
        delay = retry_delay if retry_delay is not None else policy.delay_ms(inv.attempts)
        inv.status = "backing-off"
        inv.next_retry_at = now + delay
        self._schedule_retry(inv)

    def _complete(self, inv: Invocation, result: bytes | Failure) -> None:
        self._progress += 1
        now = self._now()
        self._dirty.add(inv)
        inv.completed = True
        inv.result = result
        inv.status = "completed"
        inv.completed_at = now
        inv.awaiting = None
        if self._rejected_calls:
            self._rejected_calls.pop(inv.id, None)
        self._release_lock(inv)
        callers, waiters = inv.callers, inv.waiters
        inv.callers = inv.waiters = DONE  # a completed invocation keeps no wait lists (it may be retained a day)
        inv.settle()
        self._wait.remove_all_from(inv.id)
        for caller, cid, kind in callers:
            self._wait.remove(caller.id, inv.id)
            name = "CallCompletion" if kind == "call" else "AttachInvocationCompletion"
            self._deliver(caller, name, completion_id=cid, **value_or_failure(result))
        self._waiter.sleepers.difference_update(waiters)  # woken here: no idle check needed on their behalf
        self._waiter.wake(waiters)  # type: ignore[arg-type]
        self._waiter.touch()
        h = inv.handler
        retention = (h.workflow_retention_ms if h.ty == "WORKFLOW" else
                     h.idempotency_retention_ms if inv.idempotency_key is not None else h.journal_retention_ms)
        inv.expires_at = now + (retention or DAY_MS)
        self._schedule_expiry(inv)

    def _expire_idempotency(self, idem: tuple[str, str, str, str], inv_id: str) -> None:
        if self._records.expire_idempotency(idem, inv_id):
            self._forget(inv_id)

    def _expire_workflow(self, inv: Invocation) -> None:
        wk = (inv.target.service, inv.target.key or "")
        if not self._records.expire_workflow_run(wk, inv.id):
            return
        self._state.pop(wk, None)
        self._dirty_state.add(wk)
        self._dirty_promises.add(wk)
        self._forget(inv.id)

    def _drop(self, inv: Invocation) -> None:
        """Remove an invocation and every table entry naming it (its retention timer then finds nothing)."""
        self._forget(inv.id)
        self._records.forget_invocation(inv.id)

    def _forget(self, inv_id: str) -> None:
        inv = self._invocations.get(inv_id)
        if inv is None or not inv.completed:
            return
        del self._invocations[inv_id]
        self._dirty.add(inv)  # the store deletes it
        if self._by_start_id.get(inv.start_id) is inv:
            del self._by_start_id[inv.start_id]

    @staticmethod
    def _not_started(inv: Invocation) -> bool:
        return inv.status in ("pending", "scheduled") and inv.attempts == 0

    def _end_unstarted(self, inv: Invocation, failure: Failure) -> None:
        """End an invocation that never started (a delayed send, or queued in a key's inbox): whoever waits
        for it gets `failure`, and then, as in Restate, it is forgotten (attach and output answer 404)."""
        inv.status = "completed"  # keeps a delayed start from firing; the inbox skips completed entries
        self._complete(inv, failure)
        self._drop(inv)

    def _cancel(self, inv: Invocation) -> None:
        if inv.completed:
            return
        if self._not_started(inv):
            self._end_unstarted(inv, Failure(409, "canceled"))  # the server's spelling, one l
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
        if self._not_started(inv) and not self._freed_by_this_kill(inv):
            self._end_unstarted(inv, Failure(409, "killed"))
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

    def _freed_by_this_kill(self, inv: Invocation) -> bool:
        """Queued for a lock whose holder is being killed (a call an invocation made to its own key, or a
        deadlock's queued member): Restate starts it on the freed lock before the kill reaches it, so it is
        kept, not forgotten (it ends killed, or completed if its handler wins the race; here: killed)."""
        lk = inv.lock_key
        holder = self._invocations.get(self._keys.holder(lk) or "") if lk is not None else None
        return holder is not None and holder.killing

    def _pending_callees(self, inv: Invocation) -> list[Invocation]:
        """Invocations that `inv` called (request-response) and still waits for."""
        answered = answered_completion_ids(inv.journal, "CallCompletion")
        out = []
        for e in inv.journal:
            if e.type_id == TYPE_IDS["Call"] and e.msg.result_completion_id not in answered:
                child = self._invocations.get(call_target_id(inv, e.msg) or "")
                if child is not None:
                    out.append(child)
        return out

    # ------------------------------------------------------------------ reading (for the layers above)
    def invocation(self, invocation_id: str) -> Invocation:
        return self._get(invocation_id)

    def all_invocations(self) -> Iterable[Invocation]:
        """Every invocation the engine keeps (completed ones until their retention ends)."""
        return self._invocations.values()

    _all_invocations = all_invocations  # the name tests/runtime/test_store.py still uses

    @property
    def _services(self) -> dict[str, Registered]:  # the name tests reach deployments by (see registry.py)
        return self._registry.services

    def stored_state(self, service: str, key: str) -> dict[str, bytes]:
        """The K/V state of one object or workflow, as stored (raw bytes)."""
        return self._state.get((service, key), {})

    @property
    def store(self) -> str | None:
        """The store's file, or None for the in-memory default."""
        return self._store.path

    def close(self, reason: str = "rt.close() was called") -> None:
        """Stop this runtime: attempts in flight end, its store file is released. Later use raises."""
        self._recovery.close(reason)

    def durable_meta(self) -> dict[str, Any]:
        """The engine's own durable values (clock, id generator, inbox sequence), as a store records them."""
        return self._recovery.durable_meta()

    def deadlocks(self) -> list[Deadlock]:
        """The wait-for cycles standing now; each lists its invocations, targets and edges and draws itself."""
        return self._explainer.deadlocks()

    @staticmethod
    def awakeable_id(inv: Invocation, idx: int) -> str:
        """The id of awakeable number `idx` of `inv`, as the SDK derives it ('sign_1...')."""
        return Explainer.awakeable_id(inv, idx)

    def __repr__(self) -> str:
        counts = status_counts(self._invocations.values())
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no invocations"
        return (f"<playground.Runtime {self._clock.kind} clock at {self.now.isoformat()}; "
                f"services: {', '.join(self._registry.services) or 'none'}; {summary}>")
