"""The registry: the services the engine knows. Each name has its newest registered revision (what discovery
said, the deployment serving it, the SDK object), its latest manifest entry and its revision number; a
service known only from a store has a manifest and a revision but no registration until it is registered."""

from __future__ import annotations

from typing import Any

import restate

from ..protocol.deployment import Deployment, HandlerInfo, ServiceInfo
from .common import Registered
from .model import Target


class Registry:
    """Registrations, manifests and revisions, by service name."""

    def __init__(self) -> None:
        self.services: dict[str, Registered] = {}
        self.manifests: dict[str, dict[str, Any]] = {}  # kept in the store
        self.revisions: dict[str, int] = {}

    def get(self, name: str) -> Registered | None:
        return self.services.get(name)

    def routable(self, target: Target, from_ingress: bool, strict: bool) -> tuple[Registered, HandlerInfo, Target]:
        """The registration and handler `target` names, and the target as invoked (a keyed callee called
        without a key from a handler, `strict` False, gets the empty key); TerminalError with Restate's
        ingress messages when it cannot be invoked."""
        reg = self.services.get(target.service)
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
        if from_ingress and hinfo.ingress_private:
            raise restate.TerminalError("the invoked service is not public", 400)  # Restate's ingress wording
        return reg, hinfo, target

    def add_revision(self, obj: Any, info: ServiceInfo, deployment: Deployment, manifest: dict[str, Any]) -> int:
        """Register `obj` (named `info.name`) as a new revision: 1 for a name never seen, else one more than
        the last; new invocations use it, running ones keep theirs. Returns the revision."""
        name = info.name
        previous = self.services.get(name)
        revision = previous.revision + 1 if previous else self.revisions.get(name, 1)
        self.services[name] = Registered(info, deployment, obj, revision)
        self.manifests[name] = manifest
        self.revisions[name] = revision
        return revision

    def restore(self, name: str, manifest: dict[str, Any], revision: int) -> None:
        """A service a store knows of (a registration in this process takes precedence)."""
        self.manifests.setdefault(name, manifest)
        self.revisions.setdefault(name, revision)
