"""The cell-side API: calls, sends, attach/output, and the operations Restate's CLI offers
(cancel, kill, pause, resume, completing awakeables and promises)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

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
from .model import (
    Failure,
    Invocation,
    SendHandle,
    Target,
)
from .records import Records
from .registry import Registry
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


_KIND_LABELS = {"service": "a Service", "object": "a Virtual Object", "workflow": "a Workflow"}
_KIND_METHODS = {"service": "service_call/service_send", "object": "object_call/object_send",
                 "workflow": "workflow_call/workflow_send"}
_SERVICE_TARGETS: dict[tuple[str, str], Target] = {}
# the targets of recently called keys (targets are immutable; building one costs more than looking it up)
_keyed_target = functools.lru_cache(maxsize=1024)(Target)


class Ingress:
    """The Engine's last mixin (see docs/architecture.md, "still to do"): the cells' calls, sends, attach,
    cancel/kill/pause, awakeables and promises, working on the state Engine.__init__ sets up. What it
    needs of the Engine is declared here (the Engine provides each)."""

    _commit: Callable[[], None]
    _commands: Commands
    _waiter: Waiter
    _registry: Registry
    _records: Records
    _invocations: dict[str, Invocation]
    _dirty: set[Invocation]

    def _invoke(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None,
                delay_ms: int, invoked_by: Invocation | None,
                strict: bool) -> tuple[Invocation, bool, Failure | None]:
        raise NotImplementedError  # the Engine's

    def _start(self, inv: Invocation) -> None:
        raise NotImplementedError  # the Engine's

    def _cancel(self, inv: Invocation) -> None:
        raise NotImplementedError  # the Engine's

    def _kill(self, inv: Invocation) -> None:
        raise NotImplementedError  # the Engine's

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
        if kind != how:
            raise TypeError(f"{h.service_tag.name}/{h.name} belongs to {_KIND_LABELS[kind]}: use "
                            f"rt.{_KIND_METHODS[kind]}")
        if how == "service":
            # one Target per service handler (targets are immutable): building one costs more than the rest
            target = _SERVICE_TARGETS.get((h.service_tag.name, h.name))
            if target is None:
                target = _SERVICE_TARGETS[(h.service_tag.name, h.name)] = Target(h.service_tag.name, h.name, None)
            return h, target
        if key is None:
            what = "workflow id" if how == "workflow" else "object key"
            raise ValueError(f"{h.service_tag.name}/{h.name} needs key=...: the {what} to address, e.g. key='Mary'")
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        return h, _keyed_target(h.service_tag.name, h.name, key)

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

    async def _typed_call(self, how: str, tpe: Any, key: str | None, arg: Any, idempotency_key: str | None,
                          headers: dict[str, str] | None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        h, target = self._resolve(tpe, how, key)
        body = self._encode_arg(h, target, arg)
        inv = self._ingress_call(target, body, headers, idempotency_key)
        inv = await self._waiter.await_done(inv, f"{how}_call to {target}")
        return self._decode(h, inv.result)

    async def _typed_send(self, how: str, tpe: Any, key: str | None, arg: Any, send_delay: timedelta | None,
                          idempotency_key: str | None, headers: dict[str, str] | None) -> SendHandle:
        h, target = self._resolve(tpe, how, key)
        delay = duration_ms(send_delay, "send_delay")
        body = self._encode_arg(h, target, arg)
        return self._ingress_send(target, body, headers, idempotency_key, delay)

    async def service_call(self, tpe: Any, arg: Any = None, idempotency_key: str | None = None,
                           headers: dict[str, str] | None = None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        return await self._typed_call("service", tpe, None, arg, idempotency_key, headers)

    async def object_call(self, tpe: Any, key: str | None = None, arg: Any = None,
                          idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        return await self._typed_call("object", tpe, key, arg, idempotency_key, headers)

    async def workflow_call(self, tpe: Any, key: str | None = None, arg: Any = None,
                            idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
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
        inv = self._ingress_call(target, bytes(arg), headers, idempotency_key)
        inv = await self._waiter.await_done(inv, f"generic_call to {target}")
        if isinstance(inv.result, Failure):
            raise inv.result.to_terminal_error()
        return inv.result or b""

    async def generic_send(self, service: str, handler: str, arg: bytes, key: str | None = None,
                           send_delay: timedelta | None = None, idempotency_key: str | None = None,
                           headers: dict[str, str] | None = None, scope: str | None = None,
                           limit_key: str | None = None) -> SendHandle:
        self._refuse_scope(scope, limit_key)
        target = self._generic_target(service, handler, arg, key)
        return self._ingress_send(target, bytes(arg), headers, idempotency_key, duration_ms(send_delay, "send_delay"))

    def _ingress_send(self, target: Target, body: bytes, headers: dict[str, str] | None, idem: str | None,
                      delay: int) -> SendHandle:
        inv, previous, _ = self._invoke(target, body, headers, idem, delay, invoked_by=None, strict=True)
        inv.sent = inv.sent or not previous
        self._commit()
        exec_time = to_datetime(inv.scheduled_at) if inv.scheduled_at else None
        return SendHandle(inv.id, "PreviouslyAccepted" if previous else "Accepted", exec_time)

    def _ingress_call(self, target: Target, body: bytes, headers: dict[str, str] | None,
                      idem: str | None) -> Invocation:
        inv, _previous, error = self._invoke(target, body, headers, idem, 0, invoked_by=None, strict=True)
        self._commit()
        if error is not None:
            raise error.to_terminal_error()
        return inv

    def _find(self, target: Any, key: str | None, idempotency_key: str | None, missing: str) -> Invocation:
        """The invocation an attach/output refers to: an id; a workflow handler and its id (the run of that
        workflow); or a handler, key and idempotency key (the idempotent invocation)."""
        if isinstance(target, str):
            if key is not None or idempotency_key is not None:
                raise TypeError("pass either an invocation id, or a handler with key=/idempotency_key=, not both")
            inv = self._invocations.get(target)
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
            inv_id = self._records.idempotent((svc, key or "", name, idempotency_key))
            if inv_id is None:
                raise restate.TerminalError(missing, 404)
        elif h.service_tag.kind == "workflow" and key is not None:
            inv_id = self._records.run_of((svc, key))
            if inv_id is None:
                raise restate.TerminalError(missing, 404)
        else:
            raise restate.TerminalError("You can attach only to invocations created with an idempotency key, or "
                                        "for workflow methods.", 400)
        return self._invocations[inv_id]

    async def attach(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        """Wait for an invocation's result: by invocation id, by workflow (`attach(run, key="wf-1")`), or by
        idempotency key (`attach(handler, key=..., idempotency_key=...)`). Decoded with its handler's serde."""
        __tracebackhide__ = True  # IPython (and pytest) show the user's frame, not the runtime's
        inv = self._find(target, key, idempotency_key, "not found")  # Restate's ingress messages for a 404
        inv = await self._waiter.await_done(inv, f"attach to {inv.id} ({inv.target})")
        return self._decode_for(inv)

    def output(self, target: Any, key: str | None = None, idempotency_key: str | None = None) -> Any:
        """The result of a completed invocation (found as for attach); raises pg.NotReady while it runs."""
        inv = self._find(target, key, idempotency_key, "invocation not found")
        if not inv.completed:
            raise NotReady(f"{inv.id} ({inv.target}) is {inv.status}: the response is not ready yet")
        return self._decode_for(inv)

    def _decode_for(self, inv: Invocation) -> Any:
        reg = self._registry.get(inv.target.service)
        handler = reg.obj.handlers.get(inv.target.handler) if reg else None
        if handler is None:
            if isinstance(inv.result, Failure):
                raise inv.result.to_terminal_error()
            return inv.result
        return self._decode(handler, inv.result)

    def _get(self, invocation_id: str) -> Invocation:
        inv = self._invocations.get(invocation_id)
        if inv is None:
            try:
                ids.parse(invocation_id)
            except ids.BadInvocationId as exc:
                raise ValueError(f"invocation_id: {exc} (ids look like 'inv_1' + 33 characters of 0-9a-zA-Z; "
                                 f"see rt.invocations())") from None
            raise KeyError(f"no invocation {invocation_id!r} in this runtime (see rt.invocations())")
        return inv

    # ------------------------------------------------------------------ operations (as Restate's CLI offers them)
    def cancel(self, invocation_id: str) -> None:
        """Cancel as Restate does: a started invocation gets the cancel signal (the SDK raises TerminalError
        409 "cancelled" at its current await and cancels its pending calls); one not yet started ends at
        once with 409 "canceled"; a finished one is left alone."""
        self._cancel(self._get(invocation_id))
        self._commit()

    def kill(self, invocation_id: str) -> None:
        """End an invocation and every call it waits on at once, without running any more handler code.
        Callers get 409 "killed"; one-way sends it made are not touched; locks are released. One that has not
        started (a delayed send, or queued in a key's inbox) is then forgotten, as Restate does: attach and
        output answer 404."""
        self._kill(self._get(invocation_id))
        self._commit()

    def pause(self, invocation_id: str) -> None:
        """Stop retrying (or running) an invocation until resume(); it shows as 'paused'."""
        inv = self._get(invocation_id)
        if inv.completed or inv.status == "paused":
            return
        if inv.status in ("pending", "scheduled"):
            raise ValueError(f"{inv.id} has not started yet; cancel it instead, or let it start first")
        inv.status = "paused"
        inv.next_retry_at = None
        self._dirty.add(inv)
        self._commit()
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
            self._dirty.add(inv)
        self._commit()

    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        """Complete an awakeable from a cell, as `POST /restate/awakeables/<id>/resolve` does. `value` is
        encoded as JSON (the SDK's default serde), bytes are sent as they are."""
        self._complete_awakeable(awakeable_id, {"value": messages.new("Value", content=_json_body(value))})

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        """Fail an awakeable from a cell: the awaiting handler gets TerminalError(message, code)."""
        _check_failure(message, code)
        self._complete_awakeable(awakeable_id, {"failure": failure_message(Failure(code, message))})

    def _complete_awakeable(self, awakeable_id: str, result: dict[str, Any]) -> None:
        if not isinstance(awakeable_id, str):
            raise TypeError(f"awakeable_id must be the str id of an awakeable ('sign_1...', as ctx.awakeable() "
                            f"returns it), not {type(awakeable_id).__name__}")
        target, idx = self._commands.parse_awakeable(awakeable_id)
        if idx == 0:
            raise ValueError(f"{awakeable_id!r} is not an awakeable id (they look like 'sign_1...')")
        if target is None:
            raise KeyError(f"no invocation in this runtime owns awakeable {awakeable_id!r}")
        self._commands.signal(target, {"idx": idx}, result)
        self._commit()

    def resolve_promise(self, workflow: str, key: str, name: str, value: Any = None) -> None:
        """Resolve a workflow's durable promise from a cell; a second resolution fails with 409, as in Restate.
        As with a shared handler in Restate, the workflow's run need not have started: it sees the promise
        resolved when it does."""
        self._check_promise(workflow, key, name)
        self._commands.complete_promise((workflow, key), name, _json_body(value))
        self._commit()

    def reject_promise(self, workflow: str, key: str, name: str, message: str, code: int = 500) -> None:
        """Fail a workflow's durable promise from a cell: its awaiter gets TerminalError(message, code)."""
        self._check_promise(workflow, key, name)
        _check_failure(message, code)
        self._commands.complete_promise((workflow, key), name, Failure(code, message))
        self._commit()

    def _check_promise(self, workflow: str, key: str, name: str) -> None:
        for what, value in (("workflow", workflow), ("key", key), ("name", name)):
            if not isinstance(value, str):
                raise TypeError(f"{what} must be a str, not {type(value).__name__}")
        manifest = self._registry.manifests.get(workflow)
        if manifest is None or manifest.get("ty") != "WORKFLOW":
            known = sorted(n for n, m in self._registry.manifests.items() if m.get("ty") == "WORKFLOW")
            raise ValueError(f"{workflow!r} is not a registered workflow; promises belong to workflows "
                             f"(registered: {', '.join(map(repr, known)) or 'none'})")
