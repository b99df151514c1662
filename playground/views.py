"""How the engine's records show in a notebook, without the engine importing the layer that draws them:
playground.render registers itself here when it is imported; `import playground` registers a loader that
imports it the first time a record is drawn (graphviz and the drawing code cost nothing until then)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Drawing(Protocol):
    """What the records' reprs need from the drawing layer."""

    def deadlock_dot(self, deadlock: Any) -> str: ...

    def html(self, source: str, caption: str = "") -> str: ...

    def mimebundle(self, source: str, text: str) -> dict[str, str]: ...

    def journal_html(self, rt: Any, inv: Any, nested_depth: int = 1) -> str: ...


_registered: list[Drawing] = []
_loaders: list[Callable[[], Drawing]] = []


def register(drawing: Drawing) -> None:
    """Make `drawing` the one the records use (the last registered wins)."""
    _registered[:] = [drawing]


def register_loader(loader: Callable[[], Drawing]) -> None:
    """Have `loader` supply the drawing the first time a record is drawn, if none is registered by then."""
    _loaders[:] = [loader]


def drawing() -> Drawing:
    if not _registered and _loaders:
        register(_loaders[0]())
    if not _registered:
        raise RuntimeError("nothing draws the playground's records: import playground (it registers "
                           "playground.render)")
    return _registered[0]
