"""Invocations and their lifecycle: created (or found again, by an idempotency key or a workflow run),
enqueued on their key, started, fed notifications, suspended, retried, completed, cancelled, killed and,
after their retention, forgotten."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol import messages
from ..protocol.deployment import HandlerInfo
from . import ids
from .clock import check_due
from .common import DAY_MS, INPUT_MESSAGE, TYPE_IDS, Registered, check_request, value_or_failure
from .journal import answered_completion_ids, awaited, call_target_id, wakes
from .model import DONE, Failure, Invocation, JournalEntry, Target, TransientError

if TYPE_CHECKING:
    from ..protocol.driver import Attempt
    from .attempts import Attempts
    from .keys import Keys
    from .records import Records
    from .recovery import Recovery
    from .registry import Registry
    from .requests import IngressOrder
    from .scheduler import Scheduler
    from .timers import Timers
    from .waitfor import WaitForGraph
    from .waiting import Waiter


class LifecycleHost(Protocol):
    """What the lifecycle needs of the engine: its tables (read each time: a restore replaces them), the
    clock, the scheduler and timers, the key locks, and the parts that run attempts and wait."""

    scheduler: Scheduler
    _requests: IngressOrder
    _progress: int
    _closed: str | None
    _seeded_ids: ids.SeededIds
    _registry: Registry
    _records: Records
    _invocations: dict[str, Invocation]
    _by_start_id: dict[bytes, Invocation]
    _state: dict[tuple[str, str], dict[str, bytes]]
    _dirty: set[Invocation]
    _dirty_state: set[tuple[str, str]]
    _dirty_promises: set[tuple[str, str]]
    _rejected_calls: dict[str, Target]
    _keys: Keys
    _wait: WaitForGraph
    _timers: Timers
    _attempts: Attempts
    _waiter: Waiter
    _recovery: Recovery

    def _now(self) -> int: ...


class Lifecycle:
    """The engine's part that moves invocations through their states (the engine's `_lifecycle`). It owns
    no table: it reads and changes the engine's through `host` (see LifecycleHost). The other parts reach
    its steps as the engine's `_invoke`, `_start`, `_deliver`, `_complete`, ... (bound in Engine.__init__)."""

    def __init__(self, host: LifecycleHost) -> None:
        self.host = host

    # ------------------------------------------------------------------ creating invocations
    def invoke(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None, delay_ms: int,
               invoked_by: Invocation | None, strict: bool) -> tuple[Invocation, bool, Failure | None]:
        """Create (or find, for idempotency keys and workflow runs) the invocation of `target`.

        Returns (invocation, previously_accepted, failure-for-a-call). Unknown targets raise TerminalError
        404 with Restate's ingress messages; `strict` is False for calls from handlers, where the callee's
        kind decides whether a key is used.
        """
        host = self.host
        if host._closed is not None:
            host._recovery.check_open()
        check_request(target, headers, idem)
        if delay_ms > 0:
            check_due(host._now() + delay_ms, "send_delay")
        reg, hinfo, target = host._registry.routable(target, invoked_by is None, strict)
        key_s = target.key or ""
        if hinfo.ty == "WORKFLOW":
            existing = host._records.run_of((target.service, key_s))
            if existing is not None:
                return host._invocations[existing], True, Failure(409, "the workflow method was already invoked")
        idem_key = (target.service, key_s, target.handler, idem) if idem is not None else None
        seen = host._records.idempotent(idem_key) if idem_key is not None else None
        if seen is not None:
            return host._invocations[seen], True, None
        inv = self._new_invocation(reg, hinfo, target, body, headers, idem, invoked_by)
        if hinfo.ty == "WORKFLOW":
            host._records.remember_workflow_run((target.service, key_s), inv.id)
        if idem_key is not None:
            host._records.remember_idempotent(idem_key, inv.id)
        self._place(inv, delay_ms, invoked_by)
        return inv, False, None

    def _new_invocation(self, reg: Registered, hinfo: HandlerInfo, target: Target, body: bytes,
                        headers: dict[str, str] | None, idem: str | None, invoked_by: Invocation | None) -> Invocation:
        """A new invocation with its Input entry, in the engine's tables."""
        host = self.host
        inv_id, raw, seed = ids.new_ids(host._seeded_ids, target.service, target.handler,
                                        target.key if reg.info.keyed else None, idem, hinfo.ty == "WORKFLOW")
        now = host._now()
        inv = Invocation(
            id=inv_id, target=target, service=reg.info, handler=hinfo, deployment=reg.deployment,
            revision=reg.revision, start_id=raw, random_seed=seed, created_at=now,
            invoked_by="service" if invoked_by else "ingress",
            invoked_by_id=invoked_by.id if invoked_by else None,
            invoked_by_target=str(invoked_by.target) if invoked_by else None,
            idempotency_key=idem, runtime=host,
        )
        inp = INPUT_MESSAGE()  # (setting fields is much cheaper than keyword construction on this hot path)
        inp.value.content = body
        for k, v in (headers or {}).items():
            inp.headers.add(key=k, value=v)
        inv.journal.append(JournalEntry(TYPE_IDS["Input"], inp, now))
        host._dirty.add(inv)
        host._invocations[inv.id] = inv
        host._by_start_id[raw] = inv
        return inv

    def _place(self, inv: Invocation, delay_ms: int, invoked_by: Invocation | None) -> None:
        """A new invocation's way to its key: after its delay, now, or when the scheduler's strategy picks it."""
        if delay_ms > 0:
            inv.status = "scheduled"
            inv.scheduled_at = inv.created_at + delay_ms
            self.schedule_start(inv)
        elif self.host.scheduler.eager:  # the default strategy: as posted (checked here to keep the hot path lean)
            self.enqueue(inv)
        else:  # one FIFO per sender: a handler's sends to a key keep their order, others may interleave
            post = self.host.scheduler.post if invoked_by is not None else self.host._requests.post
            post(invoked_by.id if invoked_by is not None else inv.id, f"enqueue {inv.id}",
                 lambda: None if inv.completed else self.enqueue(inv))

    # ------------------------------------------------------------------ timers
    def schedule_start(self, inv: Invocation) -> None:
        assert inv.scheduled_at is not None
        self.host._timers.add(inv.scheduled_at, lambda: self.enqueue(inv) if inv.status == "scheduled" else None,
                              f"delayed start of {inv.id} {inv.target}")

    def schedule_sleep(self, inv: Invocation, cid: int, wake_ms: int) -> None:
        self.host._timers.add(wake_ms, lambda: self.deliver(inv, "SleepCompletion", completion_id=cid,
                                                            void=messages.new("Void")),
                              f"sleep of {inv.id} {inv.target}")

    def schedule_retry(self, inv: Invocation) -> None:
        assert inv.next_retry_at is not None
        self.host._timers.add(inv.next_retry_at, lambda: self.start(inv) if inv.status == "backing-off" else None,
                              f"retry of {inv.id} {inv.target}")

    def schedule_expiry(self, inv: Invocation) -> None:
        """Completed invocations are kept for a retention period, then purged as Restate does: workflow runs
        with their workflow's state, idempotent ones with their key, the rest after the journal retention."""
        assert inv.completed_at is not None and inv.expires_at is not None
        expiry: tuple[Callable[[Any], None], Any, str]  # the action, its argument, what it is
        if inv.handler.ty == "WORKFLOW":
            expiry = (self._expire_workflow, inv, "workflow retention")
        elif inv.idempotency_key is not None:
            idem = (inv.target.service, inv.target.key or "", inv.target.handler, inv.idempotency_key)
            expiry = (partial(self._expire_idempotency, idem), inv.id, "idempotency retention")
        else:  # (an action and its argument, no closure: one tuple in a lane, kept a day per invocation)
            expiry = (self.forget, inv.id, "journal retention")
        self.host._timers.add_housekeeping(inv.completed_at, inv.expires_at - inv.completed_at, *expiry)

    # ------------------------------------------------------------------ running
    def enqueue(self, inv: Invocation) -> None:
        lk = inv.lock_key
        self.host._dirty.add(inv)
        inv.status = "pending"
        if lk is None:
            self.start(inv)
            return
        took, cycle = self.host._keys.take_or_queue(inv, lk, self.host._now())
        if took:
            self.start(inv)
        else:
            self.host._waiter.on_edge(cycle)

    def _release_lock(self, inv: Invocation) -> None:
        nxt = self.host._keys.release(inv)
        if nxt is not None:
            self.start(nxt)

    def start(self, inv: Invocation) -> None:
        """Start `inv`'s next attempt: now (the default strategy), or when the scheduler's strategy picks it
        among the runnable attempts of different invocations."""
        attempts = self.host._attempts
        if not self.host.scheduler.eager:
            self.host.scheduler.post(("start", inv.id), f"start {inv.id}",
                                     lambda: None if inv.completed or inv.attempt is not None else attempts.open(inv))
            return
        attempts.open(inv)

    def append(self, inv: Invocation, type_id: int, msg: Any, frame: bytes | None = None) -> JournalEntry:
        entry = JournalEntry(type_id, msg, self.host._now(), frame)
        inv.journal.append(entry)
        self.host._dirty.add(inv)
        return entry

    def deliver(self, inv: Invocation, kind: str, /, **fields: Any) -> None:
        """Store a notification in the journal and hand it to the live attempt, or wake a suspended invocation."""
        if inv.completed or inv.killing:
            return  # e.g. a killed caller: its journal takes no new entries
        self.host._progress += 1
        msg = messages.new(kind, **fields)
        entry = self.append(inv, TYPE_IDS[kind], msg)
        attempt = inv.attempt
        if attempt is not None and "notify" in self.host.scheduler.held:  # the strategy decides when it hears it
            self.host.scheduler.post(("notify", inv.id), f"notify {inv.id} {kind}",
                                     lambda: self._hand_over(inv, attempt, entry), "notify")
        elif attempt is not None and attempt.notify(msg):
            entry.seen_by_attempt = inv.attempts  # the SDK wakes up; busy until it blocks again
        elif inv.status == "suspended" and wakes(inv, msg):
            self._resume(inv)

    def _hand_over(self, inv: Invocation, attempt: Attempt, entry: JournalEntry) -> None:
        """A held notification reaches its attempt (a later one reads it from the journal), or resumes."""
        if inv.attempt is attempt and not inv.killing and attempt.notify(entry.msg):
            entry.seen_by_attempt = inv.attempts
        elif inv.status == "suspended" and wakes(inv, entry.msg):
            self._resume(inv)

    def on_suspended(self, inv: Invocation, fut: Any, stored_before: int) -> None:
        completions, signals, named = awaited(fut)
        inv.waiting_ids = (set(completions), set(signals), set(named))
        inv.status = "suspended"
        self.host._dirty.add(inv)
        # Something awaited may be stored already without the attempt having seen it (a run proposal stored
        # after the input closed; anything stored while it ran with a closed input, as in always_suspend).
        # What the attempt did see cannot be what it still waits for (e.g. a second await on one signal).
        attempt_no = inv.attempts
        if any(wakes(inv, e.msg) for e in inv.journal[stored_before:]
               if messages.is_notification(e.type_id) and e.seen_by_attempt != attempt_no):
            self._resume(inv)

    def _resume(self, inv: Invocation) -> None:
        inv.waiting_ids = None
        self.start(inv)

    def on_transient(self, inv: Invocation, failure: Failure, retry_delay: int | None, stored: bool,
                     related: str | None, stacktrace: str = "", behavior: int = messages.ERROR_RETRY,
                     pause: bool = False, related_fields: tuple[Any, Any, Any] = (None, None, None)) -> None:
        """Record a failed attempt, then retry by the policy; an SDK's Error.behavior (V7) of PAUSE or FAIL
        takes precedence, as Restate's invoker gives it: pause now, or fail now as on_max_attempts='kill'.
        `pause`: the attempt was cut off by the user's interrupt, which pauses the invocation."""
        now = self.host._now()
        self.host._dirty.add(inv)
        err = TransientError(inv.attempts, len(inv.journal) - 1, now, failure.code, failure.message, stacktrace,
                             related, *related_fields)
        inv.record_error(err)
        inv.retry_count_since_last_entry = 1 if stored else inv.retry_count_since_last_entry + 1
        policy = inv.handler.retry
        if pause:
            inv.status = "paused"
            self.host._waiter.touch()
            return
        exhausted = policy.max_attempts is not None and inv.attempts >= policy.max_attempts
        fail_now, pause_now = behavior == messages.ERROR_FAIL, behavior == messages.ERROR_PAUSE
        if exhausted or fail_now or pause_now:
            if fail_now or (not pause_now and policy.on_max_attempts == "kill"):
                self.complete(inv, failure)
            else:
                inv.status = "paused"
                self.host._waiter.touch()
            return
        delay = retry_delay if retry_delay is not None else policy.delay_ms(inv.attempts)
        inv.status = "backing-off"
        inv.next_retry_at = now + delay
        self.schedule_retry(inv)

    def complete(self, inv: Invocation, result: bytes | Failure) -> None:
        host = self.host
        host._progress += 1
        now = host._now()
        host._dirty.add(inv)
        inv.completed = True
        inv.result = result
        inv.status = "completed"
        inv.completed_at = now
        inv.awaiting = None
        if host._rejected_calls:
            host._rejected_calls.pop(inv.id, None)
        self._release_lock(inv)
        self._answer_waiters(inv, result)
        h = inv.handler
        retention = (h.workflow_retention_ms if h.ty == "WORKFLOW" else
                     h.idempotency_retention_ms if inv.idempotency_key is not None else h.journal_retention_ms)
        inv.expires_at = now + (retention or DAY_MS)
        self.schedule_expiry(inv)

    def _answer_waiters(self, inv: Invocation, result: bytes | Failure) -> None:
        """Hand a completed invocation's result to the handlers that called or attached to it, and wake the
        cells awaiting it."""
        callers, waiters = inv.callers, inv.waiters
        inv.callers = inv.waiters = DONE  # a completed invocation keeps no wait lists (it may be retained a day)
        inv.settle()
        wait = self.host._wait
        wait.remove_all_from(inv.id)
        for caller, cid, kind in callers:
            wait.remove(caller.id, inv.id)
            name = "CallCompletion" if kind == "call" else "AttachInvocationCompletion"
            self.deliver(caller, name, completion_id=cid, **value_or_failure(result))
        waiter = self.host._waiter
        waiter.sleepers.difference_update(waiters)  # woken here: no idle check needed on their behalf
        waiter.wake(waiters)  # type: ignore[arg-type]
        waiter.touch()

    # ------------------------------------------------------------------ retention
    def _expire_idempotency(self, idem: tuple[str, str, str, str], inv_id: str) -> None:
        if self.host._records.expire_idempotency(idem, inv_id):
            self.forget(inv_id)

    def _expire_workflow(self, inv: Invocation) -> None:
        wk = (inv.target.service, inv.target.key or "")
        if not self.host._records.expire_workflow_run(wk, inv.id):
            return
        self.host._state.pop(wk, None)
        self.host._dirty_state.add(wk)
        self.host._dirty_promises.add(wk)
        self.forget(inv.id)

    def drop(self, inv: Invocation) -> None:
        """Remove an invocation and every table entry naming it (its retention timer then finds nothing)."""
        self.forget(inv.id)
        self.host._records.forget_invocation(inv.id)

    def forget(self, inv_id: str) -> None:
        host = self.host
        inv = host._invocations.get(inv_id)
        if inv is None or not inv.completed:
            return
        del host._invocations[inv_id]
        host._dirty.add(inv)  # the store deletes it
        if host._by_start_id.get(inv.start_id) is inv:
            del host._by_start_id[inv.start_id]

    # ------------------------------------------------------------------ cancel and kill
    def _end_unstarted(self, inv: Invocation, failure: Failure) -> None:
        """End an invocation that never started (a delayed send, or queued in a key's inbox): whoever waits
        for it gets `failure`, and then, as in Restate, it is forgotten (attach and output answer 404)."""
        inv.status = "completed"  # keeps a delayed start from firing; the inbox skips completed entries
        self.complete(inv, failure)
        self.drop(inv)

    def cancel(self, inv: Invocation) -> None:
        if inv.completed:
            return
        if _not_started(inv):
            self._end_unstarted(inv, Failure(409, "canceled"))  # the server's spelling, one l
            return
        self.deliver(inv, "Signal", idx=messages.CANCEL_SIGNAL, void=messages.new("Void"))
        # The signal makes its current await fail at once: it no longer waits on anything, so a cycle
        # through it is broken now, not only when it has finished.
        self.host._wait.remove_all_from(inv.id)
        if inv.status in ("paused", "backing-off") and inv.attempt is None:
            self.start(inv)  # run now, so the handler sees the cancellation at once

    def kill(self, inv: Invocation) -> None:
        if inv.completed or inv.killing:
            return
        if _not_started(inv) and not self._freed_by_this_kill(inv):
            self._end_unstarted(inv, Failure(409, "killed"))
            return
        # Stop it first (no more notifications reach its handler code), then kill what it waits on, then
        # complete it: its lock is released only after a call queued behind it has been killed, so that
        # call never starts.
        inv.killing = True
        if inv.attempt is not None:
            inv.attempt.abort()
        for child in self._pending_callees(inv):
            self.kill(child)
        self.complete(inv, Failure(409, "killed"))

    def _freed_by_this_kill(self, inv: Invocation) -> bool:
        """Queued for a lock whose holder is being killed (a call an invocation made to its own key, or a
        deadlock's queued member): Restate starts it on the freed lock before the kill reaches it, so it is
        kept, not forgotten (it ends killed, or completed if its handler wins the race; here: killed)."""
        lk = inv.lock_key
        holder = self.host._invocations.get(self.host._keys.holder(lk) or "") if lk is not None else None
        return holder is not None and holder.killing

    def _pending_callees(self, inv: Invocation) -> list[Invocation]:
        """Invocations that `inv` called (request-response) and still waits for."""
        answered = answered_completion_ids(inv.journal, "CallCompletion")
        out = []
        for e in inv.journal:
            if e.type_id == TYPE_IDS["Call"] and e.msg.result_completion_id not in answered:
                child = self.host._invocations.get(call_target_id(inv, e.msg) or "")
                if child is not None:
                    out.append(child)
        return out


def _not_started(inv: Invocation) -> bool:
    return inv.status in ("pending", "scheduled") and inv.attempts == 0
