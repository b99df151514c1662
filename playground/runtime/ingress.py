"""The cell-side API, a part of the engine: calls, sends, attach/output, and the operations Restate's CLI
offers (cancel, kill, pause, resume, completing awakeables and promises)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

import restate
from restate.handler import handler_from_callable

from ..errors import NotReady
from ..protocol import messages
from . import ids
from .clock import to_datetime
from .commands import Commands
from .common import (
    duration_ms,
    failure_message,
)
from .invocations import Lifecycle
from .model import (
    Failure,
    Invocation,
    SendHandle,
    Target,
)
from .records import Records
from .registry import Registry
from .requests import IngressOrder, promise_operation
from .scheduler import Scheduler
from .waiting import Waiter


def _json_body(value: Any) -> bytes:
    """What a cell sends as a completion value: JSON (the SDK's default serde), bytes as they are."""
    return bytes(value) if isinstance(value, (bytes, bytearray)) else bytes(restate.serde.JsonSerde().serialize(value))


def _check_failure(message: Any, code: Any) -> None:
    """A rejection's message and code, checked before anything is completed."""
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, not {type(message).__name__}")
    if not isinstance(code, int) or isinstance(code, bool):
        raise TypeError(f"code must be an int error code such as 500, not {type(code).__name__}")
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"code must be an error code between 0 and 65535, such as 500 (got {code})")


class IngressHost(Protocol):
    """What the cells' side needs of the engine: its tables (read each time: a restore replaces them), the
    lifecycle it starts, cancels and kills invocations with, the commands part for signals and promises,
    the waiter its awaits go through, and the commit that ends each operation."""

    _lifecycle: Lifecycle
    _commands: Commands
    _waiter: Waiter
    _registry: Registry
    _records: Records
    _invocations: dict[str, Invocation]
    _dirty: set[Invocation]
    scheduler: Scheduler
    _requests: IngressOrder

    def _commit(self) -> None: ...
    def invocation(self, invocation_id: str) -> Invocation: ...


class Ingress:
    """The engine's part for the cells (the engine's `_ingress`): calls, sends, attach/output, cancel, kill,
    pause, resume, awakeables and promises, each checked before anything is created. The Engine's public
    methods of the same names (service_call, ..., cancel, ...) forward here; their docstrings, which help()
    shows on pg.Runtime, live there. The HTTP door starts calls and sends here too (runtime/operations.py)."""

    def __init__(self, host: IngressHost) -> None:
        self.host = host

    # ------------------------------------------------------------------ calls and sends
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
        except Exception as exc:
            raise TypeError(f"cannot encode arg for {target} with its serde {type(serde).__name__}: {exc}") from exc

    @staticmethod
    def _decode(h: Any, result: bytes | Failure | None) -> Any:
        if isinstance(result, Failure):
            raise result.to_terminal_error()
        return h.handler_io.output_serde.deserialize(result or b"")

    async def typed_call(self, how: str, tpe: Any, key: str | None, arg: Any, idempotency_key: str | None,
                         headers: dict[str, str] | None) -> Any:
        """A call from a cell to a handler of a service, object or workflow (`how`), decoded with its serde."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        h, target = self._resolve(tpe, how, key)
        body = self._encode_arg(h, target, arg)
        inv = self.call(target, body, headers, idempotency_key)
        inv = await self.host._waiter.await_done(inv, f"{how}_call to {target}")
        return self._decode(h, inv.result)

    async def typed_send(self, how: str, tpe: Any, key: str | None, arg: Any, send_delay: timedelta | None,
                         idempotency_key: str | None, headers: dict[str, str] | None) -> SendHandle:
        """A one-way send from a cell, as for typed_call."""
        h, target = self._resolve(tpe, how, key)
        delay = duration_ms(send_delay, "send_delay")
        body = self._encode_arg(h, target, arg)
        return await self._accepted(self.send(target, body, headers, idempotency_key, delay))

    def _generic_target(self, service: str, handler: str, arg: bytes, key: str | None) -> Target:
        if not isinstance(arg, (bytes, bytearray)):
            raise TypeError(f"generic calls take raw bytes as arg, not {type(arg).__name__} (e.g. b'\"Hi\"')")
        return Target(service, handler, key)

    @staticmethod
    def _refuse_scope(scope: str | None, limit_key: str | None) -> None:
        """A default restate-server 1.7's ingress refuses scoped requests and limit keys (flow control is an
        experimental feature there); the same 400s here."""
        for name, value in (("scope", scope), ("limit_key", limit_key)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
        if scope is not None:
            raise restate.TerminalError("scoped invocations require vqueues to be enabled", 400)
        if limit_key is not None:
            raise restate.TerminalError("limit-key requires a scope to be set", 400)

    async def generic_call(self, service: str, handler: str, arg: bytes, key: str | None = None,
                           idempotency_key: str | None = None, headers: dict[str, str] | None = None,
                           scope: str | None = None, limit_key: str | None = None) -> bytes:
        self._refuse_scope(scope, limit_key)
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        target = self._generic_target(service, handler, arg, key)
        inv = self.call(target, bytes(arg), headers, idempotency_key)
        inv = await self.host._waiter.await_done(inv, f"generic_call to {target}")
        if isinstance(inv.result, Failure):
            raise inv.result.to_terminal_error()
        return inv.result or b""

    async def generic_send(self, service: str, handler: str, arg: bytes, key: str | None = None,
                           send_delay: timedelta | None = None, idempotency_key: str | None = None,
                           headers: dict[str, str] | None = None, scope: str | None = None,
                           limit_key: str | None = None) -> SendHandle:
        self._refuse_scope(scope, limit_key)
        target = self._generic_target(service, handler, arg, key)
        return await self._accepted(self.send(target, bytes(arg), headers, idempotency_key,
                                              duration_ms(send_delay, "send_delay")))

    async def _accepted(self, handle: SendHandle) -> SendHandle:
        """Under an exploring strategy a send is in flight for one loop turn (so sends started together, as with
        asyncio.gather, may land in either order), then accepted: requests made after it go after it."""
        if not self.host.scheduler.eager:
            await asyncio.sleep(0)
            self.host._requests.accepted(handle.invocation_id)
        return handle

    def send(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None,
             delay: int) -> SendHandle:
        """Accept a one-way send from outside (a cell or the HTTP door), stored before this returns."""
        lifecycle = self.host._lifecycle
        inv, previous, _ = lifecycle.invoke(target, body, headers, idem, delay, invoked_by=None, strict=True)
        inv.sent = inv.sent or not previous
        self.host._commit()
        exec_time = to_datetime(inv.scheduled_at) if inv.scheduled_at else None
        return SendHandle(inv.id, "PreviouslyAccepted" if previous else "Accepted", exec_time)

    def call(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None) -> Invocation:
        """Create (or find) the invocation of a call from a cell, stored before this returns; a call the
        ingress refuses (e.g. a workflow's second run) raises its TerminalError."""
        lifecycle = self.host._lifecycle
        inv, _previous, error = lifecycle.invoke(target, body, headers, idem, 0, invoked_by=None, strict=True)
        self.host._commit()
        if error is not None:
            raise error.to_terminal_error()
        return inv

    def _find(self, target: Any, key: str | None, idempotency_key: str | None, missing: str) -> Invocation:
        """The invocation an attach/output refers to: an id; a workflow handler and its id (the run of that
        workflow); or a handler, key and idempotency key (the idempotent invocation)."""
        if isinstance(target, str):
            if key is not None or idempotency_key is not None:
                raise TypeError("pass either an invocation id, or a handler with key=/idempotency_key=, not both")
            inv = self.host._invocations.get(target)
            if inv is None:  # never existed, expired after its retention, or cancelled before it started
                try:
                    ids.parse(target)
                except ids.BadInvocationId as exc:  # Restate's ingress: 400 "bad invocation id '...': <reason>"
                    raise restate.TerminalError(str(exc), 400) from None
                raise restate.TerminalError(missing, 404)
            return inv
        h = self._handler_of(target)
        svc, name = h.service_tag.name, h.name
        if idempotency_key is not None:
            inv_id = self.host._records.idempotent((svc, key or "", name, idempotency_key))
            if inv_id is None:
                raise restate.TerminalError(missing, 404)
        elif h.service_tag.kind == "workflow" and key is not None:
            inv_id = self.host._records.run_of((svc, key))
            if inv_id is None:
                raise restate.TerminalError(missing, 404)
        else:
            raise restate.TerminalError("You can attach only to invocations created with an idempotency key, or "
                                        "for workflow methods.", 400)
        return self.host._invocations[inv_id]

    async def attach(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        inv = self._find(target, key, idempotency_key, "not found")  # Restate's ingress messages for a 404
        inv = await self.host._waiter.await_done(inv, f"attach to {inv.id} ({inv.target})")
        return self._decode_for(inv)

    def output(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        inv = self._find(target, key, idempotency_key, "invocation not found")
        if not inv.completed:
            raise NotReady(f"{inv.id} ({inv.target}) is {inv.status}: the response is not ready yet")
        return self._decode_for(inv)

    def _decode_for(self, inv: Invocation) -> Any:
        reg = self.host._registry.get(inv.target.service)
        handler = reg.obj.handlers.get(inv.target.handler) if reg else None
        if handler is None:
            if isinstance(inv.result, Failure):
                raise inv.result.to_terminal_error()
            return inv.result
        return self._decode(handler, inv.result)

    # ------------------------------------------------------------------ operations (as Restate's CLI offers them)
    # Each is checked at once (bad input raises before anything is posted); its state change is an event of
    # kind "operation": it runs now under the default strategy, or when a strategy holding operations picks
    # it, its own request among those in flight (runtime/requests.py). A held one finds the tables as they
    # are by then: one that no longer applies (the invocation ended, the promise was completed) does nothing.
    def _operate(self, what: str, action: Callable[[], None]) -> None:
        if "operation" in self.host.scheduler.held:
            self.host._requests.post_operation(what, action)
        else:
            action()

    def cancel(self, invocation_id: str) -> None:
        inv = self.host.invocation(invocation_id)
        self._operate(f"cancel {inv.id}", lambda: self._lifecycle_step(self.host._lifecycle.cancel, inv))

    def kill(self, invocation_id: str) -> None:
        inv = self.host.invocation(invocation_id)
        self._operate(f"kill {inv.id}", lambda: self._lifecycle_step(self.host._lifecycle.kill, inv))

    def _lifecycle_step(self, step: Callable[[Invocation], None], inv: Invocation) -> None:
        step(inv)
        self.host._commit()

    def pause(self, invocation_id: str) -> None:
        inv = self.host.invocation(invocation_id)
        if inv.completed or inv.status == "paused":
            return
        if inv.status in ("pending", "scheduled"):
            raise ValueError(f"{inv.id} has not started yet; cancel it instead, or let it start first")
        self._operate(f"pause {inv.id}", lambda: self._pause(inv))

    def _pause(self, inv: Invocation) -> None:
        if inv.completed or inv.status == "paused":
            return
        inv.status = "paused"
        inv.next_retry_at = None
        self.host._dirty.add(inv)
        self.host._commit()
        if inv.attempt is not None:
            inv.attempt.abort()  # the attempt ends; _on_attempt_end sees the pause and stays put

    def resume(self, invocation_id: str) -> None:
        inv = self.host.invocation(invocation_id)
        if inv.status != "paused":
            raise ValueError(f"{inv.id} is {inv.status}, not paused")
        self._operate(f"resume {inv.id}", lambda: self._resume(inv))

    def _resume(self, inv: Invocation) -> None:
        if inv.status != "paused":
            return  # (held: a pause still waiting, or a cancel or kill that ended it, went first)
        if inv.attempt is None:
            self.host._lifecycle.start(inv)
        else:
            inv.status = "running"  # its aborted attempt is still winding down; restart when it has ended
            inv.resume_after_attempt = True
            self.host._dirty.add(inv)
        self.host._commit()

    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        self._complete_awakeable(awakeable_id, {"value": messages.new("Value", content=_json_body(value))})

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        _check_failure(message, code)
        self._complete_awakeable(awakeable_id, {"failure": failure_message(Failure(code, message))})

    def _complete_awakeable(self, awakeable_id: str, result: dict[str, Any]) -> None:
        if not isinstance(awakeable_id, str):
            raise TypeError(f"awakeable_id must be the str id of an awakeable ('sign_1...', as ctx.awakeable() "
                            f"returns it), not {type(awakeable_id).__name__}")
        target, idx = self.host._commands.parse_awakeable(awakeable_id)
        if idx == 0:
            raise ValueError(f"{awakeable_id!r} is not an awakeable id (they look like 'sign_1...')")
        if target is None:
            raise KeyError(f"no invocation in this runtime owns awakeable {awakeable_id!r}")

        def complete() -> None:
            self.host._commands.signal(target, {"idx": idx}, result)  # a second completion is ignored
            self.host._commit()
        self._operate(f"complete awakeable {idx} of {target.id}", complete)

    def resolve_promise(self, workflow: str, key: str, name: str, value: Any = None) -> None:
        self._check_promise(workflow, key, name)
        self._complete_promise(workflow, key, name, _json_body(value))

    def reject_promise(self, workflow: str, key: str, name: str, message: str, code: int = 500) -> None:
        self._check_promise(workflow, key, name)
        _check_failure(message, code)
        self._complete_promise(workflow, key, name, Failure(code, message))

    def _complete_promise(self, workflow: str, key: str, name: str, value: bytes | Failure) -> None:
        def complete() -> None:
            self.host._commands.complete_promise((workflow, key), name, value)  # Restate's 409 if completed
            self.host._commit()
        if "operation" not in self.host.scheduler.held:
            complete()
            return
        requests = self.host._requests
        promise = (workflow, key, name)
        # the 409 is told now: for a promise completed, or to be completed by an operation this cell made
        # before (it lands first); one completed by a handler before this lands makes this one do nothing
        self.host._records.check_open((workflow, key), name, requests.promises)
        requests.promises.add(promise)

        def complete_held() -> None:
            requests.promises.discard(promise)
            if name not in self.host._records.promises_of((workflow, key)):
                complete()
        requests.post_operation(promise_operation(workflow, key, name), complete_held)

    def _check_promise(self, workflow: str, key: str, name: str) -> None:
        for what, value in (("workflow", workflow), ("key", key), ("name", name)):
            if not isinstance(value, str):
                raise TypeError(f"{what} must be a str, not {type(value).__name__}")
        manifest = self.host._registry.manifests.get(workflow)
        if manifest is None or manifest.get("ty") != "WORKFLOW":
            known = sorted(n for n, m in self.host._registry.manifests.items() if m.get("ty") == "WORKFLOW")
            raise ValueError(f"{workflow!r} is not a registered workflow; promises belong to workflows "
                             f"(registered: {', '.join(map(repr, known)) or 'none'})")
