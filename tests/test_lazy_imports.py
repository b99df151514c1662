"""`import playground` loads what running handlers need and no more: drawing (graphviz), tables (pandas),
widgets and the SQLite store load the first time they are used, and everything that shows them still works
then. Each test runs in a fresh interpreter, since this test session has long imported all of them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ON_FIRST_USE = ["graphviz", "pandas", "IPython", "ipywidgets", "anywidget", "playground.render", "playground.timeline",
                          "playground.widgets", "playground.introspect", "google.protobuf.descriptor_pb2", "sqlite3"]


def fresh(code: str) -> str:
    """Run `code` in a new interpreter; its stdout."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_playground_loads_no_drawing_tables_widgets_or_sqlite() -> None:
    loaded = fresh(f"""
        import sys
        import playground
        print(" ".join(m for m in {ON_FIRST_USE!r} if m in sys.modules))
    """)
    assert loaded == ""


def test_pg_render_loads_the_drawing_module_on_first_use() -> None:
    out = fresh("""
        import sys
        import playground as pg
        before = "graphviz" in sys.modules
        from playground import render
        print(before, pg.render is render is sys.modules["playground.render"], "graphviz" in sys.modules,
              "render" in pg.__all__)
    """)
    assert out == "False True True True"


def test_a_record_draws_in_a_fresh_process_without_importing_the_drawing_module_by_hand() -> None:
    out = fresh("""
        import sys
        import playground as pg
        from playground.errors import Deadlock, DeadlockMember
        m = [DeadlockMember("inv_a", "A/k/h", "suspended", "calls inv_b"),
             DeadlockMember("inv_b", "B/k/h", "suspended", "calls inv_a")]
        d = Deadlock(m, [("inv_a", "inv_b", "call"), ("inv_b", "inv_a", "call")])
        before = "playground.render" in sys.modules
        bundle = d._repr_mimebundle_()
        print(before, "playground.render" in sys.modules, sorted(bundle)[-1], '"inv_a" -> "inv_b"' in d.dot())
    """)
    assert out == "False True text/plain True"


def test_tables_load_pandas_on_first_use_and_give_a_dataframe() -> None:
    out = fresh("""
        import asyncio, sys
        import restate
        import playground as pg
        svc = restate.Service("Lazy")

        @svc.handler()
        async def greet(ctx: restate.Context, name: str) -> str:
            return "hi " + name

        async def main():
            rt = pg.Runtime(svc)
            await rt.service_call(greet, arg="x")
            before = "pandas" in sys.modules
            df = rt.invocations()
            print(before, type(df).__name__, len(df), "pandas" in sys.modules)

        asyncio.run(main())
    """)
    assert out == "False DataFrame 1 True"
