"""restate-playground: run real Restate SDK services inside a notebook kernel, with no server.

The public API is what this module exports, plus two submodules imported by name:
- `playground.render`: pure builders of pictures (call graph, wait-for graph, timeline) that display safely;
- `playground.widgets`: live notebook views (also reached as `Runtime.dashboard()`);
`render`, `serve` and `RestateServer` (the real-server path, in `playground.real`) load on first use, so that
`import playground` costs little more than `import restate` (benchmarks/bench_coldstart.py).
Everything else is private and may change.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import views
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


def _drawing() -> Any:
    """playground.render, imported the first time a record is drawn (graphviz comes with it). By module name:
    `from . import render` would ask this package's `__getattr__` for it first, which lands back here."""
    return importlib.import_module(f"{__name__}.render")


views.register_loader(_drawing)


def __getattr__(name: str) -> Any:  # pay for drawing (graphviz) and the real-server path (hypercorn) when used
    if name == "render":
        return _drawing()
    if name in ("serve", "RestateServer"):
        from . import real
        return getattr(real, name)
    raise AttributeError(f"module 'playground' has no attribute {name!r}")
__version__ = "0.1.0"
