"""The embedded Restate server's engine (pg.Runtime, in playground.facade, adds the views on it)."""

from .core import Engine
from .model import SendHandle

__all__ = ["Engine", "SendHandle"]
