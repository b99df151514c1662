"""How the engine's records show in a notebook, without the engine importing the layer that draws them:
playground.render registers itself here when it is imported (and `import playground` imports it)."""

from __future__ import annotations

from typing import Any, Protocol


class Drawing(Protocol):
    """What the records' reprs need from the drawing layer."""

    def deadlock_dot(self, deadlock: Any) -> str: ...

    def html(self, source: str, caption: str = "") -> str: ...

    def mimebundle(self, source: str, text: str) -> dict[str, str]: ...

    def journal_html(self, rt: Any, inv: Any, nested_depth: int = 1) -> str: ...


_registered: list[Drawing] = []


def register(drawing: Drawing) -> None:
    """Make `drawing` the one the records use (the last registered wins)."""
    _registered[:] = [drawing]


def drawing() -> Drawing:
    if not _registered:
        raise RuntimeError("nothing draws the playground's records: import playground (it registers "
                           "playground.render)")
    return _registered[0]
