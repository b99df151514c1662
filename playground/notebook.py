"""IPython integration: a StuckError or DeadlockError shows the user's frames and the message, not the
runtime's own frames; a DeadlockError also shows its cycle as a graph under the traceback."""

from __future__ import annotations

import types
from typing import Any

from .errors import DeadlockError, StuckError


def install_error_display(shell: Any = None) -> bool:
    """Register the display once per IPython shell; returns whether it is active. Outside IPython, or when
    the user already set their own custom exception handler, it does nothing."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    if getattr(shell, "_playground_error_display", False):
        return True
    if getattr(shell, "custom_exceptions", ()):  # never replace someone else's handler
        return False
    shell.set_custom_exc((StuckError,), _show_stuck)
    shell._playground_error_display = True
    return True


def without_runtime_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback without its trailing frames marked `__tracebackhide__` (the runtime's waiting code).

    IPython hides marked frames itself, except the last one, where the error was raised; dropping the whole
    marked tail makes the user's own line the last frame shown."""
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    kept = list(frames)
    while kept and kept[-1].tb_frame.f_locals.get("__tracebackhide__"):
        kept.pop()
    if not kept:
        return frames[0] if frames else None
    new: types.TracebackType | None = None
    for t in reversed(kept):
        new = types.TracebackType(new, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return new


def _show_stuck(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> Any:
    shell.showtraceback((etype, value, without_runtime_frames(tb)), tb_offset=tb_offset)
    if not isinstance(value, DeadlockError):
        return None
    try:
        from IPython.display import display

        display(value)  # its _repr_mimebundle_: the cycle as a picture
    except Exception:
        pass
    return None
