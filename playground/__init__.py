"""restate-playground: run real Restate SDK services inside a notebook kernel, with no server.

The public API is what this module exports, plus two submodules imported by name:
- `playground.render`: pure builders of pictures (call graph, wait-for graph, timeline) that display safely;
- `playground.widgets`: live notebook views (also reached as `Runtime.dashboard()`);
`serve` and `RestateServer` (the real-server path, in `playground.real`) load on first use.
Everything else is private and may change.
"""

from . import render
from .errors import Deadlock, DeadlockError, MissingHandlerWarning, NotReady, StoreError, StuckError
from .facade import Runtime
from .runtime import SendHandle

__all__ = ["Runtime", "SendHandle", "NotReady", "StuckError", "DeadlockError", "Deadlock", "StoreError",
           "MissingHandlerWarning", "render",
           "serve", "RestateServer"]


def __getattr__(name: str):  # noqa: ANN202 - the real-server path loads hypercorn; only pay for it when used
    if name in ("serve", "RestateServer"):
        from . import real
        return getattr(real, name)
    raise AttributeError(f"module 'playground' has no attribute {name!r}")
__version__ = "0.1.0"
