"""IPython integration: a raised DeadlockError also shows its cycle as a graph."""

from __future__ import annotations

import pytest

from playground import notebook
from playground.errors import Deadlock, DeadlockError, DeadlockMember

IPython = pytest.importorskip("IPython")


def test_a_deadlock_error_in_a_cell_shows_the_traceback_and_the_graph(monkeypatch) -> None:  # noqa: ANN001
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    monkeypatch.setattr(shell, "custom_exceptions", ())
    assert notebook.install_error_display(shell) is True
    assert notebook.install_error_display(shell) is True  # once only
    shown: list[object] = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    tracebacks: list[object] = []
    monkeypatch.setattr(shell, "showtraceback", lambda *a, **k: tracebacks.append(a))
    deadlock = Deadlock([DeadlockMember("inv_1a", "Cyc/A/hop", "running", "waits for its call to inv_1b")],
                        [("inv_1a", "inv_1a", "call")])
    shell.user_ns["err"] = DeadlockError("boom", "inv_1a", deadlock)
    shell.run_cell("raise err")
    assert len(tracebacks) == 1
    assert len(shown) == 1 and "Cyc/A/hop" in shown[0].data and ("<svg" in shown[0].data or "digraph" in shown[0].data)
    shell.set_custom_exc((), None)
    shell._playground_error_display = False


def test_it_never_replaces_a_handler_the_user_set(monkeypatch) -> None:  # noqa: ANN001
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    monkeypatch.setattr(shell, "custom_exceptions", (ValueError,))
    monkeypatch.setattr(shell, "_playground_error_display", False, raising=False)
    assert notebook.install_error_display(shell) is False


def test_outside_ipython_it_does_nothing() -> None:
    assert notebook.install_error_display(object()) is False
