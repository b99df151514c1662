"""Pure builders of graphviz DOT source, and a display path that never raises in a cell.

`dot` is used when installed; otherwise the pip-installed `graphviz-pure` renderer; otherwise the DOT
source itself is shown, with a hint. Builders return text (or `Graph`, a graphviz.Digraph that displays
safely), so tests can check them without a browser or a renderer.
"""

from __future__ import annotations

import html as _html
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any

import graphviz

if TYPE_CHECKING:
    from .errors import Deadlock
    from .runtime.core import Runtime

CYCLE_COLOR = "#d62728"
STATUS_COLORS = {
    "pending": "#fff3bf", "scheduled": "#e7f5ff", "running": "#d3f9d8", "suspended": "#e9ecef",
    "backing-off": "#ffe8cc", "paused": "#ffc9c9", "completed": "#f8f9fa",
}


def _q(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def deadlock_dot(deadlock: "Deadlock") -> str:
    """The cycle alone: invocations labelled with target and status, every edge red."""
    lines = ["digraph deadlock {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for m in deadlock.members:
        label = f"{m.target}\n{m.invocation_id}\n{m.status}"
        lines.append(f"  {_q(m.invocation_id)} [label={_q(label)}, color={_q(CYCLE_COLOR)}, penwidth=2, "
                     f"fillcolor={_q(STATUS_COLORS.get(m.status, 'white'))}];")
    for u, v, kind in deadlock.edges:
        if u.startswith("lock "):
            lines.append(f"  {_q(u)} [shape=cylinder, label={_q(u)}, color={_q(CYCLE_COLOR)}, fillcolor=white];")
        lines.append(f"  {_q(u)} -> {_q(v)} [{_edge_style(kind)}, color={_q(CYCLE_COLOR)}, penwidth=2];")
    lines.append("}")
    return "\n".join(dict.fromkeys(lines))  # a lock node may be declared twice


def _edge_style(kind: str) -> str:
    """Call waits are solid, lock waits dashed, attach waits dotted."""
    return {
        "call": 'style=solid, label="calls"',
        "attach": 'style=dotted, label="attaches"',
        "queued": 'style=dashed, label="queued for"',
        "holds": 'style=dashed, label="held by"',
    }[kind]


def wait_for_dot(rt: "Runtime") -> str:
    """The whole wait-for graph: who waits for whom right now, with every deadlock cycle in red."""
    in_cycle: set[tuple[str, str]] = set()
    cycle_nodes: set[str] = set()
    for d in rt.deadlocks():
        cycle_nodes.update(d.invocation_ids)
        in_cycle.update((u, v) for u, v, _ in d.edges)
    lines = ["digraph wait_for {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=10];']
    declared: set[str] = set()
    for u, v, kind in rt._wait.edges():
        for node in (u, v):
            name = _node_name(node)
            if name in declared:
                continue
            declared.add(name)
            if isinstance(node, tuple):
                lines.append(f"  {_q(name)} [shape=cylinder, label={_q(name)}, fillcolor=white];")
            else:
                inv = rt._invocations.get(node)
                status = inv.status if inv else "?"
                label = f"{inv.target if inv else '?'}\n{node}\n{status}"
                extra = f", color={_q(CYCLE_COLOR)}, penwidth=2" if node in cycle_nodes else ""
                lines.append(f"  {_q(name)} [label={_q(label)}, fillcolor={_q(STATUS_COLORS.get(status, 'white'))}"
                             f"{extra}];")
        red = (_node_name(u), _node_name(v)) in in_cycle
        extra = f", color={_q(CYCLE_COLOR)}, penwidth=2" if red else ""
        lines.append(f"  {_q(_node_name(u))} -> {_q(_node_name(v))} [{_edge_style(kind)}{extra}];")
    lines.append("}")
    return "\n".join(lines)


def _node_name(node: Any) -> str:
    return f"lock {node[0]}/{node[1]}" if isinstance(node, tuple) else str(node)


def wait_for_graph(rt: "Runtime") -> "Graph":
    return Graph(wait_for_dot(rt))


# ---------------------------------------------------------------------------------------------- display


def _pure_renderer() -> str | None:
    """The `graphviz-pure` executable from pip (not on PATH when the venv is not activated)."""
    exe = shutil.which("graphviz-pure")
    if exe:
        return exe
    candidate = Path(sysconfig.get_path("scripts")) / "graphviz-pure"
    return str(candidate) if candidate.exists() else None


def to_svg(source: str) -> tuple[str | None, str]:
    """Render DOT to SVG: (svg, renderer) with renderer 'dot' or 'graphviz-pure', or (None, 'none')."""
    try:
        return graphviz.Source(source).pipe("svg", encoding="utf-8"), "dot"
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError):
        pass
    exe = _pure_renderer()
    if exe:
        try:
            out = subprocess.run([exe, "-Tsvg"], input=source, capture_output=True, text=True, timeout=30,
                                 check=True)
            return out.stdout, "graphviz-pure"
        except (OSError, subprocess.SubprocessError):
            pass
    return None, "none"


def html(source: str, caption: str = "") -> str:
    """HTML for a notebook: the SVG, or the DOT source with a hint when nothing can render it."""
    svg, _how = to_svg(source)
    cap = f"<pre style='font-size:11px'>{_html.escape(caption)}</pre>" if caption else ""
    if svg is not None:
        start = svg.find("<svg")
        return f"<div>{svg[start:] if start >= 0 else svg}{cap}</div>"
    hint = ("no graph renderer found: install graphviz (apt-get install graphviz) or "
            "pip install graphviz-pure to see this as a picture")
    return f"<div><pre>{_html.escape(source)}</pre><small>{hint}</small>{cap}</div>"


class Graph(graphviz.Source):
    """A graphviz source that displays without ever raising: SVG via dot or graphviz-pure, else the DOT text."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        return {"text/html": html(self.source), "text/plain": f"<wait-for graph, {self.source.count('->')} edges>"}
