"""What the runtime does for each command the SDK sends: state, sleeps, calls, sends, signals,
awakeables, attach, and workflow promises."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, Protocol

import restate

from ..protocol import messages
from .clock import check_due
from .common import (
    TYPE_IDS,
    AttemptFailed,
    failure_from,
    failure_message,
    value_or_failure,
)
from .invocations import Lifecycle
from .journal import call_target
from .model import (
    Failure,
    Invocation,
    JournalEntry,
    Target,
)
from .records import Records
from .registry import Registry
from .waitfor import Cycle, WaitForGraph

# A default restate-server 1.7 negotiates protocol V6 (V7 sits behind experimental-enable-protocol-v7), and
# there the SDK itself fails the attempt with this (code 573) when a call or send carries a scope or a limit
# key; the invocation then retries by its policy. The playground speaks V7 and refuses the same commands
# with the same words, so a notebook behaves as a default server does.
UNSUPPORTED_ON_V6 = 573
_UNSUPPORTED_ON_V6_MESSAGE = ("Feature '{}' is not supported by the negotiated protocol version "
                              "'application/vnd.restate.invocation.v6', the minimum required version is "
                              "'application/vnd.restate.invocation.v7'")


class EdgeWatcher(Protocol):
    """Told of each new wait-for edge and the cycle it closes, if any (the waiting part)."""

    def on_edge(self, cycle: Cycle | None) -> None: ...


class CommandHost(Protocol):
    """What the commands part needs of the engine: its tables (read each time: a restore replaces them),
    delivery of notifications, the clock, timers, invocation and cancellation, and the wait-for graph."""

    _state: dict[tuple[str, str], dict[str, bytes]]
    _dirty_state: set[tuple[str, str]]
    _dirty_promises: set[tuple[str, str]]
    _progress: int
    _registry: Registry
    _rejected_calls: dict[str, Target]
    _invocations: dict[str, Invocation]
    _by_start_id: dict[bytes, Invocation]
    _records: Records
    _wait: WaitForGraph
    @property
    def _lifecycle(self) -> Lifecycle: ...

    def _now(self) -> int: ...
    @property
    def _waiter(self) -> EdgeWatcher: ...


class Commands:
    """The engine's part that acts on stored commands. It owns no tables: it reads and changes the engine's
    through `host` (see CommandHost), and the engine and its other parts call the methods without an
    underscore (refuse_v7_only, check_callee, apply, callee_problem, signal, parse_awakeable, wait_on,
    resolve_attach_target, complete_promise)."""

    def __init__(self, host: CommandHost) -> None:
        self.host = host

    def refuse_v7_only(self, name: str, msg: Any) -> None:
        """Fail the attempt on what only a V7 server with its experimental flow control takes: scoped calls,
        sends and attach/output targets, and limit keys (see UNSUPPORTED_ON_V6)."""
        feature = None
        if name in ("Call", "OneWayCall"):
            feature = "scope" if msg.HasField("scope") else "limit key" if msg.HasField("limit_key") else None
        elif name in ("AttachInvocation", "GetInvocationOutput"):
            which = msg.WhichOneof("target")
            if which != "invocation_id" and which is not None and getattr(msg, which).HasField("scope"):
                feature = "scope"
        if feature is not None:
            raise AttemptFailed(_UNSUPPORTED_ON_V6_MESSAGE.format(feature), UNSUPPORTED_ON_V6)

    # ------------------------------------------------------------------ commands
    def apply(self, inv: Invocation, name: str, entry: JournalEntry) -> None:
        """Act on a stored command through the dispatch table; one the runtime does not know fails the
        attempt loudly (a protocol the runtime does not speak must not pass as handled). A command that
        carries its own result is not even parsed."""
        handler = COMMAND_HANDLERS.get(name)
        if handler is None:
            raise AttemptFailed(f"the playground runtime does not handle the command {name}")
        if handler is not _nothing_to_do:
            handler(self, inv, entry.msg)

    def _state_of(self, inv: Invocation) -> dict[str, bytes]:
        return self.host._state.setdefault((inv.target.service, inv.target.key or ""), {})

    def _changed_state_of(self, inv: Invocation) -> dict[str, bytes]:
        wk = (inv.target.service, inv.target.key or "")
        self.host._dirty_state.add(wk)
        return self.host._state.setdefault(wk, {})

    def _cmd_SetState(self, inv: Invocation, msg: Any) -> None:
        self._changed_state_of(inv)[msg.key.decode()] = msg.value.content

    def _cmd_ClearState(self, inv: Invocation, msg: Any) -> None:
        self._changed_state_of(inv).pop(msg.key.decode(), None)

    def _cmd_ClearAllState(self, inv: Invocation, msg: Any) -> None:
        self._changed_state_of(inv).clear()

    def _cmd_GetLazyState(self, inv: Invocation, msg: Any) -> None:
        value = self._state_of(inv).get(msg.key.decode())
        result = {"void": messages.new("Void")} if value is None else {"value": messages.new("Value", content=value)}
        self.host._lifecycle.deliver(inv, "GetLazyStateCompletion", completion_id=msg.result_completion_id, **result)

    def _cmd_GetLazyStateKeys(self, inv: Invocation, msg: Any) -> None:
        keys = [k.encode() for k in sorted(self._state_of(inv))]
        self.host._lifecycle.deliver(inv, "GetLazyStateKeysCompletion", completion_id=msg.result_completion_id,
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
        wake = self.host._now() + self._delay_for(inv, "sleep", msg.wake_up_time)
        try:
            check_due(wake, f"ctx.sleep({msg.name!r})" if msg.name else "ctx.sleep")
        except ValueError as exc:
            raise AttemptFailed(str(exc)) from None
        inv.journal[-1].due_ms = wake
        self.host._lifecycle.schedule_sleep(inv, cid, wake)

    def callee_problem(self, target: Target) -> tuple[str, bool] | None:
        """Why Restate rejects a call or send from a handler to `target` (its words), and whether registering
        a service can cure it; None when the target can be invoked."""
        reg = self.host._registry.get(target.service)
        if reg is None or target.handler not in reg.info.handlers:
            return f"the service handler {target.service}/{target.handler} was not found", True
        if not reg.info.keyed and target.key:
            return (f"a key was provided, but the callee '{target.service}' is a Service. Only VirtualObjects "
                    f"or Workflows accept a key"), False
        return None

    def check_callee(self, inv: Invocation, name: str, msg: Any) -> None:
        """Reject a Call or OneWayCall that Restate cannot route BEFORE it is stored, as Restate does (RT0018 for
        a handler that is not registered, RT0017 for a key sent to a Service): the attempt fails, the journal
        stays as it was, and the handler's retry policy retries it; once the target exists, a retry goes through."""
        target = call_target(msg)
        problem = self.callee_problem(target)
        if problem is None:
            return
        index = sum(1 for e in inv.journal if messages.is_command(e.type_id))  # the Input is command 0
        self.host._rejected_calls[inv.id] = target
        raise AttemptFailed(f"cannot process command Command: {name} (command index {index}) because of a "
                             f"failed precondition: {problem[0]}")

    def _child(self, inv: Invocation, msg: Any, delay_ms: int) -> tuple[Invocation, bool, Failure | None]:
        """Create the callee of a Call or OneWayCall. Its target was checked by check_callee before the command
        was stored, so the routing errors of `_invoke` cannot happen here."""
        target = call_target(msg)
        headers = {h.key: h.value for h in msg.headers}
        idem = msg.idempotency_key if msg.HasField("idempotency_key") else None
        try:
            return self.host._lifecycle.invoke(target, msg.parameter, headers, idem, delay_ms, invoked_by=inv,
                                               strict=False)
        except (TypeError, ValueError) as exc:  # e.g. a send_delay beyond the clock's range
            raise AttemptFailed(f"cannot call {target}: {exc}") from None

    def _cmd_Call(self, inv: Invocation, msg: Any) -> None:
        child, _previous, failure = self._child(inv, msg, 0)
        self.host._lifecycle.deliver(inv, "CallInvocationIdCompletion",
                                     completion_id=msg.invocation_id_notification_idx, invocation_id=child.id)
        cid = msg.result_completion_id
        if failure is not None:
            self.host._lifecycle.deliver(inv, "CallCompletion", completion_id=cid, failure=failure_message(failure))
        else:
            self.wait_on(inv, child, cid, "call")

    def _cmd_OneWayCall(self, inv: Invocation, msg: Any) -> None:
        delay = self._delay_for(inv, "send", msg.invoke_time)
        child, previous, _failure = self._child(inv, msg, delay)
        child.sent = child.sent or not previous
        inv.journal[-1].due_ms = self.host._now() + delay
        self.host._lifecycle.deliver(inv, "CallInvocationIdCompletion",
                                     completion_id=msg.invocation_id_notification_idx, invocation_id=child.id)

    def _cmd_SendSignal(self, inv: Invocation, msg: Any) -> None:
        target = self.host._invocations.get(msg.target_invocation_id)
        if target is None or target.completed:
            return
        if msg.WhichOneof("signal_id") == "idx" and msg.idx == messages.CANCEL_SIGNAL:
            self.host._lifecycle.cancel(target)
            return
        which = msg.WhichOneof("signal_id") or "idx"
        result = msg.WhichOneof("result") or "void"
        self.signal(target, {which: getattr(msg, which)}, {result: getattr(msg, result)})

    def _cmd_CompleteAwakeable(self, inv: Invocation, msg: Any) -> None:
        target, idx = self.parse_awakeable(msg.awakeable_id)
        if target is None:
            return
        result = msg.WhichOneof("result")
        self.signal(target, {"idx": idx}, {result: getattr(msg, result)})

    def signal(self, target: Invocation, signal_id: dict[str, Any], result: dict[str, Any]) -> None:
        """Deliver an awakeable completion or a named signal once: as in Restate, completing one again is
        accepted and ignored. Signals sent before the target asks for them wait in its journal."""
        key = next(iter(signal_id.items()))
        for e in target.journal:
            if e.type_id == TYPE_IDS["Signal"] and (e.msg.WhichOneof("signal_id"), getattr(e.msg, key[0])) == key:
                return
        self.host._lifecycle.deliver(target, "Signal", **signal_id, **result)

    def parse_awakeable(self, awakeable_id: str) -> tuple[Invocation | None, int]:
        if not awakeable_id.startswith("sign_1"):
            return None, 0
        raw = awakeable_id[len("sign_1"):]
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            return None, 0
        return self.host._by_start_id.get(data[:-4]), int.from_bytes(data[-4:], "big")

    def resolve_attach_target(self, msg: Any) -> Invocation | None:
        which = msg.WhichOneof("target")
        if which == "invocation_id":
            return self.host._invocations.get(msg.invocation_id)
        if which == "workflow_target":
            t = msg.workflow_target
            return self.host._invocations.get(self.host._records.run_of((t.workflow_name, t.workflow_key)) or "")
        if which == "idempotent_request_target":
            t = msg.idempotent_request_target
            key = (t.service_name, t.service_key if t.HasField("service_key") else "", t.handler_name,
                   t.idempotency_key)
            return self.host._invocations.get(self.host._records.idempotent(key) or "")
        return None

    def _cmd_AttachInvocation(self, inv: Invocation, msg: Any) -> None:
        self.wait_on(inv, self.resolve_attach_target(msg), msg.result_completion_id, "attach")

    def wait_on(self, inv: Invocation, target: Invocation | None, cid: int, kind: str) -> None:
        """`inv` awaits `target`'s result ("call" or "attach"): answered now if it is done (404 if there is
        none), else when it completes; meanwhile the wait-for graph has the edge."""
        name = "CallCompletion" if kind == "call" else "AttachInvocationCompletion"
        if target is None:
            self.host._lifecycle.deliver(inv, name, completion_id=cid, failure=failure_message(Failure(404,
                                         "not found")))
        elif target.completed:
            self.host._lifecycle.deliver(inv, name, completion_id=cid, **value_or_failure(target.result or b""))
        else:
            assert isinstance(target.callers, list)  # a live invocation's (DONE only once it completes)
            target.callers.append((inv, cid, kind))
            self.host._waiter.on_edge(self.host._wait.add(inv.id, target.id, kind))

    def _cmd_GetInvocationOutput(self, inv: Invocation, msg: Any) -> None:
        target = self.resolve_attach_target(msg)
        cid = msg.result_completion_id
        if target is None or not target.completed:
            self.host._lifecycle.deliver(inv, "GetInvocationOutputCompletion", completion_id=cid,
                                         void=messages.new("Void"))
        else:
            self.host._lifecycle.deliver(inv, "GetInvocationOutputCompletion", completion_id=cid,
                                         **value_or_failure(target.result or b""))

    def _promises_of(self, inv: Invocation) -> dict[str, bytes | Failure]:
        return self.host._records.promises_of((inv.target.service, inv.target.key or ""))

    def _cmd_GetPromise(self, inv: Invocation, msg: Any) -> None:
        done = self._promises_of(inv).get(msg.key)
        if done is not None:
            self.host._lifecycle.deliver(inv, "GetPromiseCompletion", completion_id=msg.result_completion_id,
                                         **value_or_failure(done))
        else:
            self.host._records.await_promise((inv.target.service, inv.target.key or ""), msg.key, inv,
                                        msg.result_completion_id)

    def _cmd_PeekPromise(self, inv: Invocation, msg: Any) -> None:
        done = self._promises_of(inv).get(msg.key)
        result = {"void": messages.new("Void")} if done is None else value_or_failure(done)
        self.host._lifecycle.deliver(inv, "PeekPromiseCompletion", completion_id=msg.result_completion_id, **result)

    def _cmd_CompletePromise(self, inv: Invocation, msg: Any) -> None:
        value: bytes | Failure = (failure_from(msg.completion_failure) if msg.WhichOneof("completion") ==
                                  "completion_failure" else msg.completion_value.content)
        try:
            self.complete_promise((inv.target.service, inv.target.key or ""), msg.key, value)
            result: dict[str, Any] = {"void": messages.new("Void")}
        except restate.TerminalError as exc:
            result = {"failure": failure_message(Failure(exc.status_code, exc.message))}
        self.host._lifecycle.deliver(inv, "CompletePromiseCompletion", completion_id=msg.result_completion_id, **result)

    def complete_promise(self, wk: tuple[str, str], name: str, value: bytes | Failure) -> None:
        waiters = self.host._records.complete_promise(wk, name, value)  # Restate's 409 when completed before
        self.host._dirty_promises.add(wk)
        self.host._progress += 1
        for waiter, wcid in waiters:
            self.host._lifecycle.deliver(waiter, "GetPromiseCompletion", completion_id=wcid, **value_or_failure(value))


def _nothing_to_do(rt: Commands, inv: Invocation, msg: Any) -> None:
    """Commands that carry their own result (eager state): storing them is all."""


# What the runtime does for each command once it is stored (Output and Run are handled as the attempt's
# end and its side effects, see attempts.py). A command missing here fails the attempt.
COMMAND_HANDLERS: dict[str, Callable[[Commands, Invocation, Any], None]] = {
    "GetLazyState": Commands._cmd_GetLazyState,
    "GetLazyStateKeys": Commands._cmd_GetLazyStateKeys,
    "GetEagerState": _nothing_to_do,
    "GetEagerStateKeys": _nothing_to_do,
    "SetState": Commands._cmd_SetState,
    "ClearState": Commands._cmd_ClearState,
    "ClearAllState": Commands._cmd_ClearAllState,
    "Sleep": Commands._cmd_Sleep,
    "Call": Commands._cmd_Call,
    "OneWayCall": Commands._cmd_OneWayCall,
    "SendSignal": Commands._cmd_SendSignal,
    "CompleteAwakeable": Commands._cmd_CompleteAwakeable,
    "AttachInvocation": Commands._cmd_AttachInvocation,
    "GetInvocationOutput": Commands._cmd_GetInvocationOutput,
    "GetPromise": Commands._cmd_GetPromise,
    "PeekPromise": Commands._cmd_PeekPromise,
    "CompletePromise": Commands._cmd_CompletePromise,
}
