"""restate-playground: run real Restate SDK services inside a notebook kernel, with no server.

The public API is what this module exports, plus two submodules imported by name:
- `playground.render`: pure builders of pictures (call graph, wait-for graph, timeline) that display safely;
- `playground.widgets`: live notebook views (also reached as `Runtime.dashboard()`);
`serve` and `RestateServer` (the real-server path, in `playground.real`) load on first use.
Everything else is private and may change.
"""

from __future__ import annotations

from typing import Any

from . import render
from .errors import Deadlock, DeadlockError, MissingHandlerWarning, NotReady, StoreError, StuckError
from .explorer import explore, replay
from .facade import Runtime
from .runtime import SendHandle

__all__ = [
    "Deadlock",
    "DeadlockError",
    "MissingHandlerWarning",
    "NotReady",
    "RestateServer",
    "Runtime",
    "SendHandle",
    "StoreError",
    "StuckError",
    "explore",
    "render",
    "replay",
    "serve",
]


def __getattr__(name: str) -> Any:  # the real-server path loads hypercorn; only pay for it when used
    if name in ("serve", "RestateServer"):
        from . import real
        return getattr(real, name)
    raise AttributeError(f"module 'playground' has no attribute {name!r}")
__version__ = "0.1.0"
