"""restate-playground: run real Restate SDK services inside a notebook kernel, with no server.

The public API is what this module exports; everything else is private and may change.
"""

from .errors import Deadlock, DeadlockError, NotReady, StuckError
from . import render
from .runtime import Runtime, SendHandle

__all__ = ["Runtime", "SendHandle", "NotReady", "StuckError", "DeadlockError", "Deadlock", "render"]
__version__ = "0.1.0"
