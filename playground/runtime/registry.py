"""The registry: the services the engine knows. Each name has its newest registered revision (what discovery
said, the deployment serving it, the SDK object), its latest manifest entry and its revision number; a
service known only from a store has a manifest and a revision but no registration until it is registered."""

from __future__ import annotations

from typing import Any

from ..protocol.deployment import Deployment, ServiceInfo
from .common import Registered


class Registry:
    """Registrations, manifests and revisions, by service name."""

    def __init__(self) -> None:
        self.services: dict[str, Registered] = {}
        self.manifests: dict[str, dict[str, Any]] = {}  # kept in the store
        self.revisions: dict[str, int] = {}

    def get(self, name: str) -> Registered | None:
        return self.services.get(name)

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
