"""How long the views take to produce what a notebook displays, run by hand:
`python benchmarks/bench_display.py`. Targets: a journal of 10,000 entries and a call graph of 1,000
invocations each display in under 2 s (the HTML a widget or `_repr_html_` hands to the browser, including
the graphviz render of the call graph to SVG)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import restate  # noqa: E402

import playground as pg  # noqa: E402
from playground import render, widgets  # noqa: E402

svc = restate.VirtualObject("DispObj")


@svc.handler()
async def many_entries(ctx: restate.ObjectContext, n: int) -> int:
    for i in range(n):  # one SetState command each
        ctx.set(f"k{i % 50}", i)
    return n


@svc.handler()
async def fan_out(ctx: restate.ObjectContext, n: int) -> int:
    for i in range(n):
        ctx.object_send(leaf, key=f"leaf-{i}", arg=i)
    return n


@svc.handler()
async def leaf(ctx: restate.ObjectContext, i: int) -> int:
    return i


async def build(entries: int, invocations: int) -> tuple[pg.Runtime, str]:
    rt = pg.Runtime(svc)
    await rt.object_call(many_entries, key="big", arg=entries - 2)  # + Input + Output
    await rt.object_call(fan_out, key="root", arg=invocations - 2)  # + the two callers
    await rt.settle()
    big = rt.invocations().query("target == 'DispObj/big/many_entries'").id.iloc[0]
    return rt, big


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


async def measure(entries: int = 10_000, invocations: int = 1_000) -> dict[str, float]:
    rt, big = await build(entries, invocations)
    assert len(rt.invocation(big).journal) == entries and len(rt.invocations()) == invocations
    out: dict[str, float] = {}
    out["journal view (10,000 entries)"], html = timed(lambda: widgets.JournalView(rt, big).html.value)
    assert html.count("<tr>") >= entries
    out["journal table rt.journal(id)"], _ = timed(lambda: rt.journal(big)._repr_html_())
    out["call graph DOT (1,000 invocations)"], _dot = timed(lambda: render.call_graph_dot(rt))
    out["call graph view, rendered to SVG"], svg_html = timed(lambda: widgets.CallGraphView(rt).html.value)
    out["per-handler call graph view"], _ = timed(lambda: widgets.CallGraphView(rt, aggregate=True).html.value)
    out["runtime summary _repr_html_"], _ = timed(rt._repr_html_)
    renderer = render.to_svg("digraph { a }")[1]
    print(f"renderer: {renderer}; call graph SVG {len(svg_html) // 1024} KB")
    return out


def main() -> int:
    results = asyncio.run(measure())
    worst = 0.0
    for name, seconds in results.items():
        print(f"{name:40s} {seconds * 1000:8.0f} ms")
        worst = max(worst, seconds)
    print(f"slowest {worst:.2f} s -> {'OK' if worst < 2 else 'ABOVE'} (target under 2 s each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
