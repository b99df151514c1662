"""Restate's admin API over the embedded runtime: what the `restate` CLI needs, and the obvious rest.

Served unversioned and under `/v1/`..`/v4/` (the CLI uses `/v4/`), as Restate does. Errors are
`{message, restate_code}`.
Deployments live in the notebook (`rt.register(...)`), so registering one over HTTP is refused with that
explanation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from . import adapter, query
from .asgi import Request, Response, admin_error

if TYPE_CHECKING:
    from ..runtime.core import Engine as Runtime

SERVER_VERSION = "1.7.12"  # the restate-server whose admin API this mirrors (the CLI reads it)
_TY = {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}
_HANDLER_TY = {"EXCLUSIVE": "Exclusive", "SHARED": "Shared", "WORKFLOW": "Workflow"}
DEPLOYMENTS_IN_NOTEBOOK = ("deployments live in the notebook: this is the restate-playground's embedded runtime, "
                           "which serves the services registered with rt.register(...) (or passed to "
                           "pg.Runtime(...)); register them there")


class AdminApp:
    """Answers one admin request; `door` gives the ingress URL that /version reports."""

    def __init__(self, rt: Runtime, door: Any) -> None:
        self.rt = rt
        self.door = door
        self.created_ms = adapter.now_ms(rt)

    async def handle(self, req: Request) -> Response:
        segs = req.segments
        if segs[:1] and re.fullmatch(r"v[1-4]", segs[0]):
            segs = segs[1:]
        route = (req.method, *segs[:1])
        try:
            if route == ("GET", "version") and len(segs) == 1:
                return Response.json(200, self._version())
            if route == ("GET", "health") and len(segs) == 1:
                return Response(200)
            if route == ("POST", "query") and len(segs) == 1:
                return self._query(req)
            if segs[:1] == ["services"]:
                return self._services(req, segs[1:])
            if segs[:1] == ["deployments"]:
                return self._deployments(req, segs[1:])
            if segs[:1] == ["invocations"] and len(segs) == 3 and req.method == "PATCH":
                return self._operate(segs[1], segs[2])
        except query.QueryError as exc:
            return admin_error(400, str(exc))
        return Response(404)

    # ------------------------------------------------------------------ version, query
    def _version(self) -> dict[str, Any]:
        ingress = self.door.ingress_url + "/" if self.door.ingress_port else None
        doc: dict[str, Any] = {"version": SERVER_VERSION, "min_admin_api_version": 2, "max_admin_api_version": 4}
        if ingress:
            doc["ingress_endpoint"] = ingress
        doc["features"] = {}
        return doc

    def _query(self, req: Request) -> Response:
        try:
            sql = json.loads(req.body or b"null")["query"]
            if not isinstance(sql, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return Response(422, b"Failed to deserialize the JSON body into the target type: missing field `query`",
                            {"content-type": "text/plain; charset=utf-8"})
        table = query.run(self.rt, sql, self.created_ms)
        if "application/json" in req.headers.get("accept", ""):
            return Response.json(200, {"rows": query.to_json_rows(table)})
        return Response(200, query.to_arrow_stream(table), {"content-type": "application/vnd.apache.arrow.stream"})

    # ------------------------------------------------------------------ services and deployments
    def _services(self, req: Request, rest: list[str]) -> Response:
        views = adapter.services(self.rt)
        if not rest and req.method == "GET":
            return Response.json(200, {"services": [self._service_doc(v) for v in views.values()]})
        view = views.get(rest[0]) if rest else None
        if view is None:
            return admin_error(404, f"The requested service '{rest[0] if rest else ''}' does not exist")
        if len(rest) == 1 and req.method == "GET":
            return Response.json(200, self._service_doc(view))
        if rest[1:] == ["state"] and req.method == "POST":
            return self._edit_state(view, req)
        if rest[1:] == ["handlers"] and req.method == "GET":
            return Response.json(200, {"handlers": self._service_doc(view)["handlers"]})
        return admin_error(405, "this operation is not supported by the playground's admin API")

    def _service_doc(self, view: adapter.ServiceView) -> dict[str, Any]:
        manifest = view.manifest
        doc: dict[str, Any] = {"name": view.name, "ty": _TY[view.ty],
                               "handlers": [_handler_doc(h) for h in manifest.get("handlers", [])],
                               "deployment_id": adapter.deployment_id(view.revision), "revision": view.revision,
                               "public": any(not h.get("ingressPrivate") for h in manifest.get("handlers", [])),
                               "idempotency_retention": "1d"}
        if view.ty == "WORKFLOW":
            doc["workflow_completion_retention"] = "1d"
        doc.update({"journal_retention": "1d", "inactivity_timeout": "1m", "abort_timeout": "10m",
                    "enable_lazy_state": bool(manifest.get("enableLazyState", False)),
                    "retry_policy": {"initial_interval": "500ms", "exponentiation_factor": 2.0, "max_attempts": 70,
                                     "max_interval": "1m", "on_max_attempts": "Pause"}})
        if manifest.get("documentation"):
            doc["documentation"] = manifest["documentation"]
        return doc

    def _deployments(self, req: Request, rest: list[str]) -> Response:
        if req.method == "POST" and not rest:
            return admin_error(400, DEPLOYMENTS_IN_NOTEBOOK)
        if req.method != "GET":
            return admin_error(405, DEPLOYMENTS_IN_NOTEBOOK)
        found = query.deployments(self.rt, self.created_ms)
        if not rest:
            return Response.json(200, {"deployments": found})
        doc = next((d for d in found if d["id"] == rest[0]), None)
        if doc is None:
            return admin_error(404, f"The requested deployment '{rest[0]}' does not exist")
        views = adapter.services(self.rt)
        full = dict(doc, services=[self._service_doc(views[s["name"]]) for s in doc["services"]])
        return Response.json(200, full)

    # ------------------------------------------------------------------ operations
    def _operate(self, invocation_id: str, op: str) -> Response:
        """Restate's answers (checked on 1.7.12): cancel 202; pause 202, or 200 when already paused; resume 200
        (also for one that is not paused: nothing to do); kill and purge 200."""
        reason = adapter.bad_invocation_id(invocation_id)
        if reason is not None:
            return admin_error(400, f"The request field 'invocation_id' is invalid. Reason: {reason}")
        status = adapter.invocation_status(self.rt, invocation_id)
        if status is None:
            return admin_error(404, f"The requested invocation '{invocation_id}' does not exist")
        if op in ("cancel", "kill", "pause") and status == "completed":
            return admin_error(409, f"The invocation '{invocation_id}' was already completed.")
        try:
            if op == "cancel":
                self.rt.cancel(invocation_id)
                return Response(202)
            if op == "kill":
                self.rt.kill(invocation_id)
            elif op == "pause":
                if status == "paused":
                    return Response(200)
                self.rt.pause(invocation_id)
                return Response(202)
            elif op == "resume":
                if status == "paused":
                    self.rt.resume(invocation_id)
            elif op == "purge":
                if status != "completed":
                    return admin_error(409, f"The invocation '{invocation_id}' is not yet completed.")
                adapter.purge(self.rt, invocation_id)
            else:
                return admin_error(405, f"the playground's admin API does not support '{op}' on invocations")
        except ValueError as exc:
            return admin_error(409, str(exc))
        return Response(200)

    def _edit_state(self, view: adapter.ServiceView, req: Request) -> Response:
        """Replace one key's state. As on Restate, the answer is 202 either way, and a `version` that is not
        the current state's (Restate's state version) leaves the state as it is."""
        try:
            doc = json.loads(req.body)
            key = doc["object_key"]
            new_state = {k: bytes(v) for k, v in (doc.get("new_state") or {}).items()}
        except (ValueError, KeyError, TypeError) as exc:
            return admin_error(400, f"bad state edit request: {exc}")
        if view.ty == "SERVICE":
            return admin_error(400, "Cannot modify state for service type Service")
        version = doc.get("version")
        if version is None or version == state_version(adapter.state_of(self.rt, view.name, key)):
            adapter.set_state(self.rt, view.name, key, new_state)
        return Response(202)


def state_version(state: dict[str, bytes]) -> str:
    """Restate's version of one key's state (what the CLI computes for `state edit`): SHA-256 over the sorted
    entries, URL-safe base64 without padding. A state edit carrying another version is refused."""
    h = hashlib.sha256()
    for i, (k, v) in enumerate(sorted((k.encode(), v) for k, v in state.items())):
        h.update(i.to_bytes(8, "big") + b"\x01" + k + b"\x02" + v + b"\x03")
    return base64.urlsafe_b64encode(h.digest()).decode().rstrip("=")


def _handler_doc(h: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": h["name"]}
    if h.get("ty"):
        doc["ty"] = _HANDLER_TY.get(h["ty"], h["ty"])
    if h.get("documentation"):
        doc["documentation"] = h["documentation"]
    doc["public"] = not h.get("ingressPrivate", False)
    inp, out = h.get("input") or {}, h.get("output") or {}
    doc["input_description"] = _describe(inp)
    doc["output_description"] = _describe(out)
    if inp.get("jsonSchema") is not None:
        doc["input_json_schema"] = inp["jsonSchema"]
    if out.get("jsonSchema") is not None:
        doc["output_json_schema"] = out["jsonSchema"]
    doc["retry_policy"] = {"max_attempts": h.get("retryPolicyMaxAttempts")}
    return doc


def _describe(spec: dict[str, Any]) -> str:
    """Restate's one-line description of a handler's input or output."""
    ct = spec.get("contentType")
    if not ct:
        return "none"
    schema = spec.get("jsonSchema")
    if ct == "application/json":
        if isinstance(schema, dict) and isinstance(schema.get("type"), str):
            return f"JSON {schema['type']}"
        return "JSON value"
    return f"value with content-type '{ct}'"
