"""The engine's parts on their own (clocks, the command dispatch table, records) and the layer rule: the
engine imports nothing above it."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest
import restate

import playground
import playground as pg
import playground.runtime.core
from playground.protocol import messages
from playground.runtime.clock import ManualClock, VirtualClock, WallClock, make_clock
from playground.runtime.commands import COMMAND_HANDLERS
from playground.runtime.common import AttemptFailed
from playground.runtime.records import Records

START = datetime(2026, 1, 1, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)


def test_each_clock_kind_is_its_own_class_and_only_the_virtual_one_jumps_when_idle() -> None:
    virtual, manual, wall = make_clock("virtual", START), make_clock("manual", START), make_clock("real", START)
    assert (type(virtual), type(manual), type(wall)) == (VirtualClock, ManualClock, WallClock)
    assert virtual.jump_when_idle(START_MS + 5000) and virtual.now_ms() == START_MS + 5000
    assert not manual.jump_when_idle(START_MS + 5000) and manual.now_ms() == START_MS
    assert not wall.jump_when_idle(START_MS + 5000)
    assert [c.follows_wall_time for c in (virtual, manual, wall)] == [False, False, True]


def test_virtual_and_manual_clocks_only_move_forward_but_a_reset_may_go_back() -> None:
    clock = make_clock("manual", START)
    clock.set(START_MS + 10)
    clock.set(START_MS)
    assert clock.now_ms() == START_MS + 10
    clock.reset(START_MS)
    assert clock.now_ms() == START_MS


def test_the_wall_clock_cannot_be_moved_and_ignores_a_stored_time() -> None:
    wall = make_clock("real")
    with pytest.raises(ValueError, match=r"advance\(\) needs a virtual or manual clock"):
        wall.check_movable("advance()")
    with pytest.raises(ValueError, match="the real clock cannot be moved"):
        wall.set(0)
    wall.restore(0)
    assert wall.now_ms() > START_MS


def test_an_unknown_clock_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="clock must be 'virtual', 'manual' or 'real', not 'lunar'"):
        make_clock("lunar")


def test_the_dispatch_table_covers_every_command_of_the_protocol_but_input_output_and_run() -> None:
    commands = {name for name, type_id in messages.TYPE_IDS.items() if messages.is_command(type_id)}
    assert set(COMMAND_HANDLERS) == commands - {"Input", "Output", "Run"}


def test_a_command_the_runtime_does_not_know_fails_the_attempt_instead_of_passing() -> None:
    rt = pg.Runtime()
    with pytest.raises(AttemptFailed, match="does not handle the command Teleport"):
        rt._commands.apply(None, "Teleport", None)  # type: ignore[arg-type]


def test_records_refuse_a_second_completion_of_a_promise_and_hand_back_its_waiters() -> None:
    records = Records()
    waiter = object()
    records.await_promise(("Wf", "w1"), "approval", waiter, 7)  # type: ignore[arg-type]
    assert records.complete_promise(("Wf", "w1"), "approval", b"yes") == [(waiter, 7)]
    with pytest.raises(restate.TerminalError, match="promise was already completed") as err:
        records.complete_promise(("Wf", "w1"), "approval", b"no")
    assert err.value.status_code == 409 and records.promises_of(("Wf", "w1")) == {"approval": b"yes"}


def test_records_forget_a_workflow_run_with_its_promises_only_if_it_is_still_that_run() -> None:
    records = Records()
    records.remember_workflow_run(("Wf", "w1"), "inv_a")
    records.complete_promise(("Wf", "w1"), "p", b"1")
    assert not records.expire_workflow_run(("Wf", "w1"), "inv_other")
    assert records.expire_workflow_run(("Wf", "w1"), "inv_a")
    assert records.run_of(("Wf", "w1")) is None and ("Wf", "w1") not in records.promises


ENGINE = Path(playground.__file__).parent
ABOVE_THE_ENGINE = {"playground.introspect", "playground.render", "playground.timeline", "playground.widgets",
                    "playground.notebook", "playground.http", "playground.facade", "playground.real", "pandas",
                    "IPython", "ipywidgets", "graphviz", "anywidget"}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute (relative imports resolved against its package)."""
    package = ["playground", *path.parent.relative_to(ENGINE).parts]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("path", sorted([*ENGINE.joinpath("runtime").glob("*.py"), ENGINE / "errors.py",
                                         ENGINE / "views.py"]), ids=lambda p: p.name)
def test_the_engine_imports_nothing_above_it(path: Path) -> None:
    above = {m for m in _imports(path) if any(m == a or m.startswith(a + ".") for a in ABOVE_THE_ENGINE)}
    assert above == set(), f"{path.name} imports {sorted(above)}"


CELL_METHODS = ["service_call", "object_call", "workflow_call", "service_send", "object_send", "workflow_send",
                "generic_call", "generic_send", "attach", "output", "cancel", "kill", "pause", "resume",
                "resolve_awakeable", "reject_awakeable", "resolve_promise", "reject_promise"]


@pytest.mark.parametrize("name", CELL_METHODS)
def test_the_cells_methods_are_real_methods_of_pg_runtime_with_their_own_signature(name: str) -> None:
    """The ingress part does the work; pg.Runtime forwards with the real signature, so help() and tab
    completion show the parameters (no *args/**kwargs, no __getattr__)."""
    method = getattr(pg.Runtime, name)
    params = list(inspect.signature(method).parameters.values())
    assert params[0].name == "self"
    assert not [p for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert name in vars(playground.runtime.core.Engine)


def test_the_operations_keep_their_docstrings_on_pg_runtime() -> None:
    assert "409 \"canceled\"" in (pg.Runtime.cancel.__doc__ or "")
    assert "then forgotten" in (pg.Runtime.kill.__doc__ or "")
    assert "raises pg.NotReady" in (pg.Runtime.output.__doc__ or "")
    assert "second resolution fails with 409" in (pg.Runtime.resolve_promise.__doc__ or "")
