"""restate-playground: run real Restate SDK services inside a notebook kernel, with no server.

The public API is what this module exports; everything else is private and may change.
"""

from .errors import DeadlockError, NotReady, StuckError
from .runtime import Runtime, SendHandle

__all__ = ["Runtime", "SendHandle", "NotReady", "StuckError", "DeadlockError"]
__version__ = "0.1.0"
