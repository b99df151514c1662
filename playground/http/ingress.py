"""Restate 1.7's HTTP ingress over the embedded runtime: calls, sends, attach/output, awakeables, health.

Paths, status codes, messages and headers are the ones restate-server 1.7.12 answers (checked live, see
docs/http.md). The one deliberate difference: a request waiting on a result is an ingress await, so virtual
time skips while the runtime is idle, and a request that can never complete answers at once (508 for a
deadlock, 504 for anything else stuck) instead of hanging.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import restate

from ..errors import DeadlockError, StuckError
from ..runtime.model import Target
from . import adapter
from .asgi import Request, Response, ingress_error
from .durations import BadDelay, parse_delay_ms

if TYPE_CHECKING:
    from ..runtime.core import Engine as Runtime

BAD_PATH = "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler"
WORKFLOW_IDEMPOTENCY = ("cannot use the idempotency key with workflow handlers. The handler invocation will "
                        "already be idempotent by the workflow key itself.")
NOT_READY = "the invocation exists but has not completed yet"
SCOPED = "scoped invocations require vqueues to be enabled"
# request headers the ingress does not hand to the handler (hop-by-hop, and the ones it consumes)
_DROPPED_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer",
                    "proxy-connection", "proxy-authorization", "idempotency-key"}
_AWAKEABLE_ID = re.compile(r"(sign|prom)_1[0-9A-Za-z_\-]+")

Guard = Callable[[Awaitable[Any]], Awaitable[Any]]


def playground_error(exc: StuckError) -> Response:
    """A request that can never complete: the runtime's explanation, at once (Restate would hang)."""
    kind, status = ("deadlock", 508) if isinstance(exc, DeadlockError) else ("stuck", 504)
    headers = {"x-playground-error": kind}
    if exc.invocation_id:
        headers["x-restate-id"] = exc.invocation_id
    return ingress_error(status, str(exc), source="ingress", headers=headers)


class IngressApp:
    """Answers one ingress request; `guard` wraps every wait so that closing the door ends it."""

    def __init__(self, rt: Runtime, guard: Guard) -> None:
        self.rt = rt
        self.guard = guard

    async def handle(self, req: Request) -> Response:
        try:
            if req.segments[:1] == ["restate"]:
                return await self._restate(req, req.segments[1:])
            if req.method not in ("GET", "POST"):
                return ingress_error(405, "method not allowed")
            return await self._invoke(req)
        except restate.TerminalError as exc:
            return ingress_error(exc.status_code, exc.message)
        except StuckError as exc:
            return playground_error(exc)

    # ------------------------------------------------------------------ calls and sends
    def _target(self, req: Request) -> tuple[Target, bool] | Response:
        segs = req.segments
        if len(segs) < 2:
            return ingress_error(400, f"bad path: {req.path}")
        view = adapter.services(self.rt).get(segs[0])
        if view is None:
            return ingress_error(404, f"service '{segs[0]}' not found, make sure to register the service "
                                      f"before calling it.")
        rest = segs[1:]
        wanted = 1 if view.ty == "SERVICE" else 2  # handler, or key and handler; then "send" for a send
        send = len(rest) == wanted + 1 and rest[-1] == "send"
        if len(rest) != wanted + send:
            return ingress_error(400, BAD_PATH)
        return (Target(segs[0], rest[0]) if wanted == 1 else Target(segs[0], rest[1], rest[0])), send

    async def _invoke(self, req: Request) -> Response:
        found = self._target(req)
        if isinstance(found, Response):
            return found
        target, send = found
        if "x-restate-limit-key" in req.headers:
            return ingress_error(400, "limit-key requires a scope to be set")
        handler = adapter.services(self.rt)[target.service].handler_manifest(target.handler)
        idem = req.headers.get("idempotency-key")
        if handler is not None:  # in restate-server's order (checked): the idempotency key, the input, the delay
            if idem is not None and handler.get("ty") == "WORKFLOW":
                return ingress_error(400, WORKFLOW_IDEMPOTENCY)
            refused = _check_input(handler, req)
            if refused is not None:
                return refused
        delay_ms = 0
        if send and "delay" in req.query:
            try:
                delay_ms = parse_delay_ms(req.query["delay"])
            except BadDelay as exc:
                return ingress_error(400, str(exc))
        headers = {"x-restate-ingress-path": req.path}
        headers.update({k: v for k, v in req.headers.items() if k not in _DROPPED_HEADERS})
        if send:
            return self._send(target, req.body, headers, idem, delay_ms)
        started = adapter.start_call(self.rt, target, req.body, headers, idem)
        result = await self.guard(adapter.await_result(self.rt, started.invocation_id, f"HTTP call to {target}")) \
            if started.failure is None else started.failure
        return _result_response(result, started.invocation_id, handler)

    def _send(self, target: Target, body: bytes, headers: dict[str, str], idem: str | None,
              delay_ms: int) -> Response:
        started = adapter.start_send(self.rt, target, body, headers, idem, delay_ms)
        doc: dict[str, Any] = {"invocationId": started.invocation_id}
        if started.execution_time_ms is not None:
            doc["executionTime"] = adapter.iso(started.execution_time_ms)
        doc["status"] = "PreviouslyAccepted" if started.previously else "Accepted"
        return Response.json(202, doc, {"x-restate-id": started.invocation_id})

    # ------------------------------------------------------------------ /restate/...
    async def _restate(self, req: Request, segs: list[str]) -> Response:
        head = segs[0] if segs else ""
        if head == "scope":  # flow control is experimental and off in a default restate-server 1.7
            return ingress_error(400, SCOPED)
        if head == "health" and len(segs) == 1:
            return Response.json(200, {"services": list(adapter.services(self.rt))})
        if head in ("awakeables", "a") and len(segs) == 3 and segs[2] in ("resolve", "reject"):
            return self._awakeable(req, segs[1], segs[2])
        if head == "invocation" and len(segs) == 3 and segs[2] in ("attach", "output"):
            return await self._by_id(segs[1], segs[2])
        if head in ("attach", "output") and len(segs) == 2:
            return await self._by_id(segs[1], head)
        if head == "invocation" and len(segs) in (5, 6) and segs[-1] in ("attach", "output"):
            service, *key, handler, idem = segs[1:-1]
            found = adapter.find_idempotent(self.rt, service, key[0] if key else None, handler, idem)
            derived = adapter.derived_id(service, key[0] if key else None, handler, idem, False)
            return await self._existing(found, derived, segs[-1], f"HTTP {segs[-1]} to {service}/{handler} ({idem})")
        if head == "workflow" and len(segs) == 4 and segs[3] in ("attach", "output"):
            found = adapter.find_workflow_run(self.rt, segs[1], segs[2])
            derived = adapter.derived_id(segs[1], segs[2], "run", None, True)
            return await self._existing(found, derived, segs[3],
                                        f"HTTP {segs[3]} to workflow {segs[1]}/{segs[2]}")
        return ingress_error(404, "not found")

    async def _by_id(self, invocation_id: str, op: str) -> Response:
        reason = adapter.bad_invocation_id(invocation_id)
        if reason is not None:
            return ingress_error(400, f"bad invocation id '{invocation_id}': {reason}")
        known = adapter.invocation_result(self.rt, invocation_id) is not None
        return await self._existing(invocation_id if known else None, None, op, f"HTTP {op} to {invocation_id}")

    async def _existing(self, invocation_id: str | None, derived: str | None, op: str, what: str) -> Response:
        if invocation_id is None:
            if op == "output":
                return ingress_error(404, "invocation not found")
            headers = {"x-restate-id": derived} if derived else {}
            return ingress_error(404, "not found", source="invocation", headers=headers)
        if op == "output":
            completed, result = adapter.invocation_result(self.rt, invocation_id) or (False, None)
            if not completed:
                return ingress_error(470, NOT_READY)
        else:
            result = await self.guard(adapter.await_result(self.rt, invocation_id, what))
        return _result_response(result, invocation_id, self._handler_of(invocation_id))

    def _handler_of(self, invocation_id: str) -> dict[str, Any] | None:
        row = self.rt.invocation(invocation_id).target
        view = adapter.services(self.rt).get(row.service)
        return view.handler_manifest(row.handler) if view else None

    def _awakeable(self, req: Request, awakeable_id: str, op: str) -> Response:
        if req.method != "POST":
            return ingress_error(405, "method not allowed")
        if not _AWAKEABLE_ID.fullmatch(awakeable_id):
            return ingress_error(400, f"bad awakeable id '{awakeable_id}': bad format")
        try:
            if op == "resolve":
                self.rt.resolve_awakeable(awakeable_id, req.body)
            else:
                self.rt.reject_awakeable(awakeable_id, req.body.decode(errors="replace"))
        except ValueError:
            return ingress_error(400, f"bad awakeable id '{awakeable_id}': id doesn't match the expected type")
        except KeyError:
            pass  # as on Restate: a completion for an invocation that is gone is accepted and dropped
        return Response(202)


def _check_input(handler: dict[str, Any], req: Request) -> Response | None:
    """Restate's input validation against the handler's declared input (discovery's manifest)."""
    spec = handler.get("input") or {}
    ct = req.content_type
    if not spec:
        if req.body or ct is not None:
            shown = f'Some("{ct}")' if ct else "None"
            return ingress_error(400, f"input validation error: Expected body and content-type to be empty, "
                                      f"but wasn't with content-type '{shown}'")
        return None
    expected = spec.get("contentType")
    if expected and req.body and ct is None:
        return ingress_error(400, "input validation error: Empty content-type")
    if expected and ct is not None and not _content_type_matches(ct, expected):
        return ingress_error(400, f"input validation error: Content-type '{ct}' does not match '{expected}'")
    return None


def _content_type_matches(actual: str, expected: str) -> bool:
    essence = actual.split(";", 1)[0].strip().lower()
    want = expected.split(";", 1)[0].strip().lower()
    if want in ("*/*", essence):
        return True
    return want.endswith("/*") and essence.startswith(want[:-1])


def _result_response(result: bytes | adapter.Failure | None, invocation_id: str,
                     handler: dict[str, Any] | None) -> Response:
    headers = {"x-restate-id": invocation_id}
    if isinstance(result, adapter.Failure):
        extra = {"metadata": dict(result.metadata)} if result.metadata else {}
        return ingress_error(result.code, result.message, source="invocation", headers=headers, **extra)
    body = result or b""
    output = (handler or {}).get("output") or {}
    if body or output.get("setContentTypeIfEmpty"):
        headers["content-type"] = output.get("contentType", "application/json")
    return Response(200, body, headers)
