"""IPython integration: a DeadlockError shows its cycle as a graph under the usual traceback."""

from __future__ import annotations

from typing import Any

from .errors import DeadlockError


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
    shell.set_custom_exc((DeadlockError,), _show_deadlock)
    shell._playground_error_display = True
    return True


def _show_deadlock(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> Any:
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    try:
        from IPython.display import HTML, display

        display(HTML(value._repr_html_()))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the picture is a bonus; the traceback is already shown
        pass
    return None
