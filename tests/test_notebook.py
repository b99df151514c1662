"""IPython integration: a raised DeadlockError also shows its cycle as a graph."""

from __future__ import annotations

import pytest

from playground import notebook
from playground.errors import Deadlock, DeadlockError, DeadlockMember

IPython = pytest.importorskip("IPython")


def test_a_deadlock_error_in_a_cell_shows_the_traceback_and_the_graph(monkeypatch) -> None:
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
    assert len(shown) == 1 and shown[0] is shell.user_ns["err"]
    bundle = shown[0]._repr_mimebundle_()  # the cycle as an SVG image (and PNG), never HTML
    assert "text/html" not in bundle and "Cyc/A/hop" in bundle["image/svg+xml"]
    shell.set_custom_exc((), None)
    shell._playground_error_display = False


def test_it_never_replaces_a_handler_the_user_set(monkeypatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    monkeypatch.setattr(shell, "custom_exceptions", (ValueError,))
    monkeypatch.setattr(shell, "_playground_error_display", False, raising=False)
    assert notebook.install_error_display(shell) is False


def test_outside_ipython_it_does_nothing() -> None:
    assert notebook.install_error_display(object()) is False


ANSI = __import__("re").compile(r"\x1b\[[0-9;]*m")

STUCK_CELLS = [
    """import asyncio, restate, playground as pg
loop = restate.VirtualObject("Loop")

@loop.handler()
async def me(ctx: restate.ObjectContext) -> None:
    await ctx.object_call(me, key=ctx.key(), arg=None)

waiter = restate.Service("Waiter")

@waiter.handler()
async def forever(ctx: restate.Context) -> None:
    await ctx.awakeable()[1]

rt = pg.Runtime(loop, waiter)

async def my_helper():
    return await rt.object_call(me, key="k")
""",
    "await my_helper()",
    "await rt.service_call(forever)",
]


def _tracebacks_of(cells: list[str]) -> list[list[str]]:
    """Run the cells in a real kernel (as a notebook does) and return each error output's traceback lines."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    return ["\n".join(ANSI.sub("", line) for line in o["traceback"]).splitlines()
            for c in nb.cells for o in c.outputs if o.output_type == "error"]


def test_a_deadlock_or_stuck_error_in_a_cell_shows_the_users_frames_and_not_the_runtimes() -> None:
    deadlock, stuck = _tracebacks_of(STUCK_CELLS)
    for lines, name in ((deadlock, "DeadlockError"), (stuck, "StuckError")):
        text = "\n".join(lines)
        frames = [line for line in lines if line.startswith(("File ", "Cell In["))]
        assert not [f for f in frames if "playground" in f], text  # no frame of the runtime's own code
        assert frames and all(f.startswith("Cell In[") for f in frames), text
        arrows = [line for line in lines if line.lstrip().startswith("---->") or "--->" in line]
        assert "rt." in arrows[-1], text  # the last line pointed at is the user's own call into the runtime
        assert any(line.startswith(name) for line in lines), text
        assert len(lines) < 25, f"{len(lines)} lines:\n{text}"
    assert any("my_helper()" in line for line in deadlock)  # the user's own function stays in the traceback
    assert any("return await rt.object_call" in line for line in deadlock)
