"""The embedded Restate server."""

from .core import Runtime
from .model import SendHandle

__all__ = ["Runtime", "SendHandle"]
