"""The seam where the outside world enters: the runtime reaches service code only through a Deployment.

Today there is one kind, the SDK's own ASGI app driven in-process (httpx's transports are the model:
one small interface, swappable implementations).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from .driver import PROTOCOL_VERSION, AsgiApp, Attempt, content_type_for, make_scope

MANIFEST_ACCEPT = "application/vnd.restate.endpointmanifest.v5+json"


@dataclass(frozen=True)
class RetryPolicy:
    """Restate's invocation retry policy; the defaults are the server's (500 ms, x2, max 60 s, 70 attempts, pause)."""

    initial_interval_ms: int = 500
    factor: float = 2.0
    max_interval_ms: int = 60_000
    max_attempts: int | None = 70
    on_max_attempts: str = "pause"  # "pause" or "kill"

    def delay_ms(self, retry: int) -> int:
        """Delay before retry number `retry` (1-based), growing by `factor` up to `max_interval_ms`."""
        delay = float(self.initial_interval_ms)
        for _ in range(retry - 1):
            if delay >= self.max_interval_ms:
                break
            delay *= self.factor
        return int(min(delay, self.max_interval_ms))


@dataclass(frozen=True)
class HandlerInfo:
    name: str
    ty: str | None  # None for plain services; "EXCLUSIVE", "SHARED" or "WORKFLOW"
    retry: RetryPolicy
    idempotency_retention_ms: int | None
    workflow_retention_ms: int | None
    journal_retention_ms: int | None
    ingress_private: bool
    lazy_state: bool

    takes_lock: bool = field(init=False)  # exclusive and workflow-run handlers hold their key's lock

    def __post_init__(self) -> None:
        object.__setattr__(self, "takes_lock", self.ty in ("EXCLUSIVE", "WORKFLOW"))


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    ty: str  # "SERVICE", "VIRTUAL_OBJECT" or "WORKFLOW"
    handlers: dict[str, HandlerInfo] = field(default_factory=dict)

    keyed: bool = field(init=False)  # objects and workflows have keys

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyed", self.ty != "SERVICE")

    @property
    def kind(self) -> str:
        """Restate's sys_service.ty spelling."""
        return {"SERVICE": "service", "VIRTUAL_OBJECT": "virtual_object", "WORKFLOW": "workflow"}[self.ty]


def _retry_from(d: dict[str, Any], base: RetryPolicy) -> RetryPolicy:
    on_max = d.get("retryPolicyOnMaxAttempts")
    return RetryPolicy(
        initial_interval_ms=d.get("retryPolicyInitialInterval", base.initial_interval_ms),
        factor=d.get("retryPolicyExponentiationFactor", base.factor),
        max_interval_ms=d.get("retryPolicyMaxInterval", base.max_interval_ms),
        max_attempts=d.get("retryPolicyMaxAttempts", base.max_attempts),
        on_max_attempts=on_max.lower() if on_max else base.on_max_attempts,
    )


def parse_manifest(manifest: dict[str, Any]) -> dict[str, ServiceInfo]:
    """Turn a discovery manifest into service descriptions, applying service-level defaults to handlers."""
    out: dict[str, ServiceInfo] = {}
    for s in manifest.get("services", []):
        svc_retry = _retry_from(s, RetryPolicy())
        handlers = {}
        for h in s.get("handlers", []):
            handlers[h["name"]] = HandlerInfo(
                name=h["name"],
                ty=h.get("ty"),
                retry=_retry_from(h, svc_retry),
                idempotency_retention_ms=h.get("idempotencyRetention", s.get("idempotencyRetention")),
                workflow_retention_ms=h.get("workflowCompletionRetention"),
                journal_retention_ms=h.get("journalRetention", s.get("journalRetention")),
                ingress_private=bool(h.get("ingressPrivate", s.get("ingressPrivate", False))),
                lazy_state=bool(h.get("enableLazyState", s.get("enableLazyState", False))),
            )
        out[s["name"]] = ServiceInfo(s["name"], s["ty"], handlers)
    return out


class Deployment(Protocol):
    """What the runtime needs from a deployment: its manifest, and a way to open one invocation attempt."""

    def discover(self) -> dict[str, Any]: ...

    def open(self, service: str, handler: str, headers: list[tuple[str, str]]) -> Attempt: ...


class AsgiDeployment:
    """The SDK's ASGI app (`restate.app(...)`), driven in-process over the service protocol."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self._scopes: dict[tuple[str, str, int], dict] = {}
        self.version = PROTOCOL_VERSION  # lowered by discover() if the app cannot speak it

    def discover(self) -> dict[str, Any]:
        # Run on a private loop in a worker thread: this works whether or not a loop is running (a notebook
        # cell), and because the SDK installs its SIGTERM takeover only on the loop it first runs on and only
        # from the main thread, running first here keeps it from ever capturing the kernel's SIGTERM.
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["manifest"] = asyncio.run(self._discover())
            except BaseException as exc:
                result["error"] = exc

        t = threading.Thread(target=work, name="playground-discovery")
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        manifest = result["manifest"]
        lo, hi = manifest.get("minProtocolVersion", 5), manifest.get("maxProtocolVersion", PROTOCOL_VERSION)
        if lo > PROTOCOL_VERSION or hi < 5:
            raise RuntimeError(f"the app speaks service protocol v{lo}..v{hi}; the playground speaks v5..v7")
        self.version = min(PROTOCOL_VERSION, hi)
        return manifest

    async def _discover(self) -> dict[str, Any]:
        events: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(event: dict) -> None:
            events.append(event)

        scope = {"type": "http", "http_version": "2", "method": "GET", "path": "/discover",
                 "headers": [(b"accept", MANIFEST_ACCEPT.encode())]}
        await self.app(scope, receive, send)
        status = events[0]["status"]
        body = b"".join(e.get("body", b"") for e in events[1:])
        if status != 200:
            raise RuntimeError(f"discovery failed with HTTP {status}: {body.decode(errors='replace')}")
        return json.loads(body)

    def open(self, service: str, handler: str, headers: list[tuple[str, str]]) -> Attempt:
        version = self.version
        scope = self._scopes.get((service, handler, version))  # made once per handler and version
        if scope is None:
            scope = self._scopes[(service, handler, version)] = make_scope(service, handler,
                                                                            content_type_for(version))
        return Attempt(self.app, service, handler, headers, content_type=content_type_for(version), scope=scope)
