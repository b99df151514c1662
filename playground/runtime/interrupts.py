"""Jupyter's interrupt button (SIGINT) while handler code runs on the kernel's loop.

Handlers run on the cell's event loop. A handler that never awaits (an endless loop) blocks that loop, so
nothing scheduled on it runs: not the 60 s inactivity check, and not ipykernel's own reaction to an
interrupt, which is to cancel the cell's task from a loop callback. Python runs signal handlers between
bytecodes of the main thread, though, whatever the loop is doing. So while a cell awaits the runtime, SIGINT
goes through `_on_sigint`: when it lands in handler code (an attempt's context, in a frame that is neither
the playground's, the SDK's nor asyncio's) it raises KeyboardInterrupt right there, which ends the attempt
(recorded as failed, the invocation paused; see Attempts._attempt_ended in attempts.py). Anywhere else it
does what the handler it replaced would have done (ipykernel cancels the cell; asyncio.run cancels the main task).

The guard is installed only from the main thread and only while an await on the runtime is in progress,
and it restores the previous handler when the last such await ends (unless someone replaced it since).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from types import FrameType
from typing import Any

import restate

from ..protocol.driver import current_attempt

try:
    import _signal as _signals  # the C module behind `signal`, without its enum conversions
except ImportError:  # pragma: no cover - another Python implementation
    _signals = signal

# Frames in these directories are never handler code: an interrupt there is left to the previous handler.
_NOT_HANDLER_CODE = tuple(os.path.dirname(m.__file__ or "") + os.sep for m in (restate, asyncio)) + (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # the playground package
)

_depth = 0  # awaits in progress that asked for the guard (main thread only)
_previous: Any = None  # the SIGINT handler the guard replaced
_MAIN_THREAD = threading.main_thread().ident


def in_handler_code(frame: FrameType | None) -> bool:
    """Whether the signal interrupted handler code of an attempt (not the runtime, the SDK or asyncio)."""
    return (frame is not None and current_attempt.get() is not None
            and not frame.f_code.co_filename.startswith(_NOT_HANDLER_CODE))


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if in_handler_code(frame):
        raise KeyboardInterrupt
    previous = _previous
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # SIG_DFL would end the process: stop with KeyboardInterrupt instead
        raise KeyboardInterrupt


class SigintGuard:
    """`with sigint_guard:` routes SIGINT through `_on_sigint` while the body runs; nested and concurrent
    uses share one install. It is entered on every ingress await, so it talks to the C module `_signal`
    directly: `signal.signal`/`getsignal` convert handlers to enums and cost ~100x more (several µs)."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _depth, _previous
        if threading.get_ident() != _MAIN_THREAD:
            return
        current = _signals.getsignal(signal.SIGINT)
        if current is not _on_sigint and current is not None:  # None: installed outside Python, leave it
            _previous = _signals.signal(signal.SIGINT, _on_sigint)
        _depth += 1

    def __exit__(self, *exc: object) -> None:
        global _depth
        if threading.get_ident() != _MAIN_THREAD:
            return
        _depth -= 1
        if _depth == 0 and _signals.getsignal(signal.SIGINT) is _on_sigint:
            _signals.signal(signal.SIGINT, _previous)


sigint_guard = SigintGuard()
