"""Attempts: the engine's part that opens an attempt of an invocation (Start and its journal to the SDK's
app), takes each message the SDK sends (commands to the commands part, run proposals, the terminal End,
Suspension or Error), and ends it (the invocation completes, suspends or retries).

Each message, and the end of the stream, is an event of the scheduler (kind "message", one FIFO per
attempt so its stream keeps its order). The default strategy holds no messages: they are handled
synchronously as the SDK sends them, with no cost per message (the callbacks are bound directly)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ..errors import StoreError
from ..protocol import framing, messages
from ..protocol.driver import Attempt, AttemptEnded, Received
from .commands import Commands
from .common import START_MESSAGE, TYPE_IDS, AttemptFailed, failure_from
from .explain import Explainer
from .faults import Faults
from .invocations import Lifecycle
from .journal import answered_completion_ids, diverged, related_fields
from .model import NO_RUNS, Failure, Invocation, Target
from .recovery import Recovery
from .scheduler import Scheduler
from .waiting import Waiter

TERMINAL = ("End", "Suspension", "Error")
_TERMINAL_IDS = frozenset(TYPE_IDS[n] for n in TERMINAL)
# the commands that name another invocation, checked before they are stored
_ROUTED = frozenset(("Call", "OneWayCall", "AttachInvocation", "GetInvocationOutput"))
_END, _SUSPENSION, _AWAITING_ON, _PROPOSE_RUN, _OUTPUT = (
    TYPE_IDS[n] for n in ("End", "Suspension", "AwaitingOn", "ProposeRunCompletion", "Output"))


class AttemptHost(Protocol):
    """What the attempts part needs of the engine: its mode and faults, the tables an attempt reads and
    marks changed, the other parts it hands messages to, and an invocation's lifecycle (start, complete,
    suspend, a transient failure)."""

    mode: str
    faults: Faults
    scheduler: Scheduler
    _progress: int

    @property
    def _dirty(self) -> set[Invocation]: ...
    @property
    def _state(self) -> dict[tuple[str, str], dict[str, bytes]]: ...
    @property
    def _rejected_calls(self) -> dict[str, Target]: ...
    @property
    def _to_start(self) -> list[Invocation]: ...
    @property
    def _commands(self) -> Commands: ...
    @property
    def _explainer(self) -> Explainer: ...
    @property
    def _recovery(self) -> Recovery: ...
    @property
    def _waiter(self) -> Waiter: ...
    @property
    def _lifecycle(self) -> Lifecycle: ...

    def _commit(self) -> None: ...
    def _now(self) -> int: ...


class Attempts:
    """The attempts in flight (`runs`, per invocation id) and the invocations busy in one (`live`: busy
    until the SDK blocks or the attempt ends). The engine calls open and abort_all; the waiting part reads
    `live`, the recovery part detaches `runs` on a crash."""

    def __init__(self, host: AttemptHost) -> None:
        self.host = host
        self.runs: dict[str, AttemptRun] = {}
        self.live: set[Invocation] = set()

    def clear(self) -> None:
        self.runs.clear()
        self.live.clear()

    def open(self, inv: Invocation) -> None:
        """Open a new attempt: send Start and the journal; the SDK's messages then arrive in _on_message.

        Whatever fails on the way is that attempt's failure (retried, and shown in its errors), so no
        invocation is ever left 'running' without an attempt."""
        if inv.deployment is None:
            self.host._recovery.park(inv)  # restored from a store, and its handler is not registered
            return
        self.host._dirty.add(inv)
        self.host._progress += 1
        inv.attempts += 1
        inv.next_retry_at = None
        inv.awaiting = None  # what an earlier attempt awaited says nothing about this one
        if self.host._rejected_calls:
            self.host._rejected_calls.pop(inv.id, None)
        try:
            journal = inv.journal
            start = self._start_message(inv, journal[-1].appended_at)
            attempt = inv.deployment.open(inv.target.service, inv.target.handler,
                                          [("x-restate-invocation-id", inv.id)])
            frames = [e.frame() for e in journal]
        except Exception as exc:
            self.host._lifecycle.on_transient(inv, Failure(500,
                                              f"the playground runtime could not start an attempt: {exc!r}"), None,
                                              False, None)
            return
        inv.status = "running"
        inv.running_at = inv.running_at or self.host._now()
        run = self.runs[inv.id] = AttemptRun(inv, attempt, len(journal))
        if journal[-1].type_id == _OUTPUT:
            # stored by an attempt that died before its End: this one replays it and only sends End
            run.output = journal[-1].msg
        if "message" in self.host.scheduler.held:  # the strategy decides when each message is handled
            attempt.on_message = lambda item: self._post_message(run, item)
            attempt.on_end = lambda ended: self._post_end(run, ended)
        else:
            attempt.on_message = lambda item: self._on_message(run, item)
            attempt.on_end = lambda ended: self._on_attempt_end(run, ended)
        attempt.on_waiting = self.host._waiter.touch
        attempt.before_read = self.host._recovery.before_sdk_reads  # the store writes before the SDK hears
        inv.attempt = attempt
        inv.pending_runs = self._unfinished_runs(inv)
        self.live.add(inv)  # busy from now until the SDK blocks or the attempt ends
        try:
            attempt.start(start, frames)
        except Exception as exc:
            del self.runs[inv.id]
            inv.attempt, inv.pending_runs = None, NO_RUNS
            self.live.discard(inv)
            self.host._lifecycle.on_transient(inv, Failure(500,
                                              f"the playground runtime could not start an attempt: {exc!r}"), None,
                                              False, None)
            return
        if self.host.mode == "always_suspend":
            attempt.close_input()

    def _start_message(self, inv: Invocation, last_stored_at: int) -> Any:
        """The Start message of the next attempt (its state map too, for eager state); `last_stored_at`: when
        its last journal entry was stored."""
        lazy = inv.handler.lazy_state
        start = START_MESSAGE()
        start.id = inv.start_id
        start.debug_id = inv.id
        start.key = inv.target.key or ""
        start.random_seed = inv.random_seed
        start.retry_count_since_last_stored_entry = inv.retry_count_since_last_entry
        # the SDK measures RunOptions.max_duration with this (on the virtual clock here)
        start.duration_since_last_stored_entry = max(0, self.host._now() - last_stored_at)
        start.partial_state = lazy
        if not lazy and inv.service.keyed:
            for k, v in self.host._state.get((inv.target.service, inv.target.key or ""), {}).items():
                start.state_map.add(key=k.encode(), value=v)
        return start

    def _post_message(self, run: AttemptRun, item: Received) -> None:
        """A message from the SDK, held by the scheduler: handled when the strategy picks it (if its attempt
        is still this runtime's then: a crash or restart cuts it off)."""
        self.host._waiter.last_activity = time.monotonic()
        name = item.name
        if name in TERMINAL:
            run.sent_terminal = True  # the SDK now only waits for the input to close: blocked on the engine
        elif name == "ProposeRunCompletion":
            run.proposed += 1  # its closure has finished
        self.host.scheduler.post(("attempt", run.inv.id), f"message {item.name} from {run.inv.id}",
                                 lambda: self._on_message(run, item) if self.runs.get(run.inv.id) is run else None,
                                 "message")
        self.host._waiter.touch()

    def _post_end(self, run: AttemptRun, ended: AttemptEnded) -> None:
        """The end of the stream, after the messages before it (a loop shutting down: at once, nothing of
        that attempt is recorded anyway)."""
        if ended.lost:
            self._on_attempt_end(run, ended)
            return
        run.ended = True
        self.host.scheduler.post(("attempt", run.inv.id), f"message end of the attempt of {run.inv.id}",
                                 lambda: self._on_attempt_end(run, ended) if self.runs.get(run.inv.id) is run else None,
                                 "message")
        self.host._waiter.touch()

    def blocked_by_queue(self, inv: Invocation) -> bool:
        """Whether `inv`'s attempt is blocked on the engine as what it posted says (its messages may wait
        in the queue, unhandled): its stream ended (the end waits), it sent its terminal message (the SDK
        waits for the input to close), or the SDK waits for external progress with no ctx.run closure
        running (each one it began has posted its proposal)."""
        run = self.runs.get(inv.id)
        if run is None:
            return False
        if run.ended:
            return True
        if run.attempt.input_closed:
            return False  # it winds down: busy until its end
        return run.sent_terminal or (run.attempt.sdk_waiting and run.attempt.runs_started == run.proposed)

    def _on_message(self, run: AttemptRun, item: Received) -> None:
        """One message from the SDK, handled synchronously as the SDK sends it (dispatched on its type id:
        this runs for every message of every attempt)."""
        inv, attempt, host = run.inv, run.attempt, self.host
        host._waiter.last_activity = time.monotonic()
        if inv.completed or inv.killing or run.broken is not None:
            return  # killed, ended, or its attempt failed (a crash): nothing the SDK still sends counts
        type_id = item.type_id
        if type_id == _AWAITING_ON:
            inv.awaiting = item.msg.awaiting_on
            return
        if run.terminal is not None and type_id != _PROPOSE_RUN:
            return  # nothing but late run proposals may follow a terminal message
        stored = inv.journal_size
        faults = host.faults
        try:
            if type_id in _TERMINAL_IDS:
                run.terminal = item
                attempt.close_input()
                if type_id == _END and run.output is not None:
                    # complete now, as Restate does on End; the app winds down in the background
                    out = run.output
                    result = failure_from(out.failure) if out.HasField("failure") else out.value.content
                    host._lifecycle.complete(inv, result)
                elif type_id == _SUSPENSION:
                    inv.awaiting = item.msg.awaiting_on
            elif type_id == _PROPOSE_RUN:
                if faults.armed:
                    cmd = host._explainer.command_for(inv, item.msg.result_completion_id)
                    injected = faults.run_fails(inv, cmd.msg.name if cmd else "")
                    if injected:
                        raise AttemptFailed(injected)
                self._on_run_proposal(inv, attempt, item)
            elif messages.is_command(type_id):
                self._on_command(run, item.name, item, stored)
            else:
                raise AttemptFailed(f"unexpected message {item.name} from the SDK")
            if faults.armed and inv.journal_size > stored and not inv.completed:
                injected = faults.crash_now(inv)  # after the message took full effect
                if injected:
                    host._commit()  # the entry is stored: the next attempt replays it
                    raise AttemptFailed(injected)
            host._commit()  # before the SDK hears anything back
        except AttemptFailed as exc:
            run.broken, run.broken_code = str(exc), exc.code
            attempt.abort()
        except Exception as exc:
            run.broken = f"the playground runtime failed handling {item.name}: {exc!r}"
            attempt.abort()

    def _on_command(self, run: AttemptRun, name: str, item: Received, stored: int) -> None:
        """A command from the SDK: checked, stored, then acted on (Output and Run wait for the attempt's end
        and the run's proposal)."""
        inv = run.inv
        if name in _ROUTED:
            # before anything is stored, as the SDK refuses it on V6
            self.host._commands.refuse_v7_only(name, item.msg)
            if name in ("Call", "OneWayCall"):  # a target Restate cannot route fails the attempt
                self.host._commands.check_callee(inv, name, item.msg)
        # stored as the SDK's frame; its message is parsed only where it is read (eager state reads: never)
        entry = self.host._lifecycle.append(inv, item.type_id, None, item.frame())
        if name == "Output":
            run.output = entry.msg
        elif name == "Run":
            assert isinstance(inv.pending_runs, set)  # a set while an attempt runs (else NO_RUNS)
            inv.pending_runs.add(entry.msg.result_completion_id)
        else:
            try:
                self.host._commands.apply(inv, name, entry)
            except AttemptFailed:
                del inv.journal[stored:]  # refused: not stored, so the next attempt sends it again
                raise

    def _on_attempt_end(self, run: AttemptRun, ended: AttemptEnded) -> None:
        if ended.lost and not run.inv.completed:
            # Its event loop is shutting down: as in a crash, nothing about this attempt is recorded (the
            # store still says running, and a restore replays it). Should this runtime be used again on
            # another loop, the invocation starts again from its journal.
            self.runs.pop(run.inv.id, None)
            run.inv.attempt = None
            run.inv.pending_runs = NO_RUNS
            self.live.discard(run.inv)
            self.host._to_start.append(run.inv)
            return
        self._attempt_ended(run, ended)
        # a store that cannot be written stops the runtime, and every await on it says why
        try:
            self.host._commit()
        except StoreError:  # (a try, not contextlib.suppress: it runs once per attempt)
            return

    def _attempt_ended(self, run: AttemptRun, ended: AttemptEnded) -> None:
        inv = run.inv
        if self.runs.get(inv.id) is run:
            del self.runs[inv.id]
        inv.attempt = None
        inv.pending_runs = NO_RUNS
        self.live.discard(inv)
        self.host._waiter.touch()
        if inv.completed:
            return  # (nothing durable changes: its completion was marked changed, and stored, as it happened)
        self.host._dirty.add(inv)
        if inv.resume_after_attempt:  # resumed while its paused attempt was still winding down
            inv.resume_after_attempt = False
            self.host._lifecycle.start(inv)
            return
        if inv.status == "paused":
            return
        stored = len(inv.journal) > run.stored_before
        terminal = run.terminal
        # a user's interrupt (Ctrl-C, Jupyter's interrupt button) in handler code: record the attempt as
        # failed and pause, so that the same endless loop does not start again on the next await
        interrupted = isinstance(ended.escaped, KeyboardInterrupt)
        if run.broken is None and terminal is None:
            err = ended.escaped or ended.error
            run.broken = (f"{err!r} raised in handler code" if ended.escaped else
                          f"the deployment ended the attempt without a result: {err!r}" if err else
                          "the deployment closed the stream without ending the invocation")
        if run.broken is not None:
            if not inv.completed:
                self.host._lifecycle.on_transient(inv, Failure(run.broken_code, run.broken), None, stored,
                                                  related=None, pause=interrupted)
        elif terminal is not None and terminal.name == "End":
            if run.output is None:
                self.host._lifecycle.on_transient(inv, Failure(571, "the SDK ended without an output"), None, stored,
                                                  related=None)
        elif terminal is not None and terminal.name == "Suspension":
            self.host._lifecycle.on_suspended(inv, terminal.msg.awaiting_on, run.stored_before)
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
                        related = diverged(inv, e.related_command_index) or related
            delay = e.next_retry_delay if e.HasField("next_retry_delay") else None
            self.host._lifecycle.on_transient(inv, Failure(e.code, e.message), delay, stored, related, e.stacktrace,
                                              e.behavior, pause=interrupted, related_fields=related_fields(e))
        if interrupted and not inv.completed:
            self.host._waiter.interrupt_awaits(inv, ended.escaped)  # type: ignore[arg-type]

    def abort_all(self, reason: str) -> int:
        """Fail every attempt in flight (their invocations retry, as after a crash of the deployment)."""
        runs = list(self.runs.values())
        for run in runs:
            run.broken = reason
            run.attempt.abort()
        return len(runs)

    @staticmethod
    def _unfinished_runs(inv: Invocation) -> set[int]:
        if len(inv.journal) == 1:  # a first attempt: only the Input so far
            return set()
        started = {e.msg.result_completion_id for e in inv.journal if e.type_id == TYPE_IDS["Run"]}
        return started - answered_completion_ids(inv.journal, "RunCompletion")

    def _on_run_proposal(self, inv: Invocation, attempt: Attempt, item: Received) -> None:
        msg = item.msg
        cid = msg.result_completion_id
        if isinstance(inv.pending_runs, set):  # a set while an attempt runs (else NO_RUNS: nothing to drop)
            inv.pending_runs.discard(cid)
        fields: dict[str, Any] = ({"failure": msg.failure} if msg.WhichOneof("result") == "failure"
                                  else {"value": messages.new("Value", content=msg.value)})
        notif = messages.new("RunCompletion", completion_id=cid, **fields)
        self.host._lifecycle.append(inv, TYPE_IDS["RunCompletion"], notif)
        if item.flags & framing.REQUESTED_ACK:
            attempt.notify(messages.new("ProposeRunCompletionAck", completion_id=cid))
        else:
            attempt.notify(notif)



class AttemptRun:
    """What one attempt has seen so far."""

    __slots__ = ("attempt", "broken", "broken_code", "ended", "inv", "output", "proposed", "sent_terminal",
                 "stored_before", "terminal")

    def __init__(self, inv: Invocation, attempt: Attempt, stored_before: int) -> None:
        self.inv, self.attempt, self.stored_before = inv, attempt, stored_before
        self.terminal: Received | None = None
        self.output: Any = None
        self.broken: str | None = None
        self.broken_code = 500
        # set when posted, for a strategy that holds messages (see Attempts.blocked_by_queue)
        self.sent_terminal = False
        self.ended = False
        self.proposed = 0  # run proposals posted (see Attempts.blocked_by_queue)
