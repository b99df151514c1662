"""Pure builders of graphviz DOT source, and a display path that never raises in a cell.

`dot` is used when installed; otherwise the pip-installed `graphviz-pure` renderer; otherwise the DOT
source itself is shown, with a hint. Builders return text (or `Graph`, a graphviz.Digraph that displays
safely), so tests can check them without a browser or a renderer.
"""

from __future__ import annotations

import base64
import html as _html
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any

import graphviz

from . import views
from .runtime import readmodel
from .runtime.common import node_label
from .runtime.journal import call_target_id, decode_payload
from .runtime.model import status_counts
from .timeline import Timeline

if TYPE_CHECKING:
    from .errors import Deadlock
    from .runtime.core import Engine as Runtime

CYCLE_COLOR = "#d62728"
# Graphviz sizes are points (1 pt = 4/3 px at 100% zoom): 12 pt node text is 16 px, 11 pt edge labels 14.7 px,
# with room to spare when a wide graph is scaled down to the width of a notebook's output area.
NODE_FONT = "fontname=\"Helvetica\", fontsize=12"
EDGE_FONT = "fontname=\"Helvetica\", fontsize=11"
STATUS_COLORS = {
    "pending": "#fff3bf", "scheduled": "#e7f5ff", "running": "#d3f9d8", "suspended": "#e9ecef",
    "backing-off": "#ffe8cc", "paused": "#ffc9c9", "completed": "#f8f9fa",
}


def _q(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_preamble(name: str, rankdir: str, fill: str | None = None) -> list[str]:
    """The first lines of every graph drawn here: its name, direction, and the node and edge styles."""
    fill_attr = f'fillcolor="{fill}", ' if fill else ""
    return [f"digraph {name} {{", f"  rankdir={rankdir};",
            f'  node [shape=box, style="rounded,filled", {fill_attr}{NODE_FONT}];', f'  edge [{EDGE_FONT}];']


def deadlock_dot(deadlock: Deadlock) -> str:
    """The cycle alone: invocations labelled with target and status, every edge red."""
    lines = dot_preamble("deadlock", "TB")
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


def wait_for_dot(rt: Runtime) -> str:
    """The whole wait-for graph: who waits for whom right now, with every deadlock cycle in red."""
    in_cycle: set[tuple[str, str]] = set()
    cycle_nodes: set[str] = set()
    for d in rt.deadlocks():
        cycle_nodes.update(d.invocation_ids)
        in_cycle.update((u, v) for u, v, _ in d.edges)
    lines = dot_preamble("wait_for", "TB")
    declared: set[str] = set()
    for u, v, kind in readmodel.wait_for_edges(rt):
        for node in (u, v):
            name = node_label(node)
            if name in declared:
                continue
            declared.add(name)
            if isinstance(node, tuple):
                lines.append(f"  {_q(name)} [shape=cylinder, label={_q(name)}, fillcolor=white];")
            else:
                inv = readmodel.invocation(rt, node)
                status = inv.status if inv else "?"
                label = f"{inv.target if inv else '?'}\n{node}\n{status}"
                extra = f", color={_q(CYCLE_COLOR)}, penwidth=2" if node in cycle_nodes else ""
                lines.append(f"  {_q(name)} [label={_q(label)}, fillcolor={_q(STATUS_COLORS.get(status, 'white'))}"
                             f"{extra}];")
        red = (node_label(u), node_label(v)) in in_cycle
        extra = f", color={_q(CYCLE_COLOR)}, penwidth=2" if red else ""
        lines.append(f"  {_q(node_label(u))} -> {_q(node_label(v))} [{_edge_style(kind)}{extra}];")
    lines.append("}")
    return "\n".join(lines)


def wait_for_graph(rt: Runtime) -> Graph:
    return Graph(wait_for_dot(rt), "wait-for graph")


def call_graph_dot(rt: Runtime, aggregate: bool = False) -> str:
    """Who called whom: one node per invocation (Service/key/handler and status) under an `ingress` root;
    solid edges for request-response calls, dashed for one-way sends, delayed sends labelled with their
    delay. With aggregate=True, one node per Service/handler and edges counted."""
    edges: list[tuple[str, str, str, str]] = []  # (from, to, kind, label)
    nodes: dict[str, tuple[str, str]] = {"ingress": ("ingress", "")}
    for inv in rt.all_invocations():
        nodes[inv.id] = (str(inv.target), inv.status)
        if inv.invoked_by == "ingress":
            delayed = inv.sent and inv.scheduled_at is not None
            label = _delay_text(inv.scheduled_at - inv.created_at) if delayed else ""  # type: ignore[operator]
            edges.append(("ingress", inv.id, "send" if inv.sent else "call", label))
    for inv in rt.all_invocations():
        for e in inv.journal:
            name = e.entry_type
            if name not in ("Command: Call", "Command: OneWayCall"):
                continue
            child = call_target_id(inv, e.msg)
            if child is None or child not in nodes:
                continue
            label = ""
            if name == "Command: OneWayCall" and e.due_ms is not None and e.due_ms > e.appended_at:
                label = _delay_text(e.due_ms - e.appended_at)
            edges.append((inv.id, child, "call" if name == "Command: Call" else "send", label))
    if aggregate:
        return _aggregate_dot(nodes, edges)
    lines = [*dot_preamble("calls", "LR"),
             '  "ingress" [shape=oval, style=filled, fillcolor="#e7f5ff", label="ingress"];']
    for node, (target, status) in nodes.items():
        if node != "ingress":
            label = f"{target}\n{node}\n{status}"
            lines.append(f"  {_q(node)} [label={_q(label)}, fillcolor={_q(STATUS_COLORS.get(status, 'white'))}];")
    for u, v, kind, label in edges:
        style = "solid" if kind == "call" else "dashed"
        lines.append(f"  {_q(u)} -> {_q(v)} [style={style}" + (f", label={_q(label)}" if label else "") + "];")
    lines.append("}")
    return "\n".join(lines)


def _aggregate_dot(nodes: dict[str, tuple[str, str]], edges: list[tuple[str, str, str, str]]) -> str:
    def handler_of(node: str) -> str:
        if node == "ingress":
            return "ingress"
        parts = nodes[node][0].split("/")
        return f"{parts[0]}/{parts[-1]}"  # drop the key

    counts: dict[tuple[str, str, str], int] = {}
    for u, v, kind, _ in edges:
        k = (handler_of(u), handler_of(v), kind)
        counts[k] = counts.get(k, 0) + 1
    lines = [*dot_preamble("handlers", "LR", fill="#f8f9fa"), '  "ingress" [shape=oval, fillcolor="#e7f5ff"];']
    for (u, v, kind), n in sorted(counts.items()):
        style = "solid" if kind == "call" else "dashed"
        lines.append(f"  {_q(u)} -> {_q(v)} [style={style}, label={_q(f'{n}x')}];")
    lines.append("}")
    return "\n".join(lines)


def _delay_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"after {ms // size} {unit}"
    return f"after {ms} ms"


def call_graph(rt: Runtime, aggregate: bool = False) -> Graph:
    return Graph(call_graph_dot(rt, aggregate), "call graph per handler" if aggregate else "call graph")


def timeline_data(rt: Runtime, service: str) -> list[dict[str, Any]]:
    """Per key of a virtual object (or workflow): its invocations in arrival order, with when each arrived,
    started and ended on the virtual clock, whether it was exclusive or shared, and who sent it."""
    rows: list[dict[str, Any]] = []
    for order, inv in enumerate(rt.all_invocations()):
        if inv.target.service != service or inv.target.key is None:
            continue
        rows.append({
            "key": inv.target.key, "arrival": order, "id": inv.id, "handler": inv.target.handler,
            "mode": "exclusive" if inv.handler.takes_lock else "shared",
            "arrived_ms": inv.scheduled_at if inv.scheduled_at is not None else inv.created_at,
            "start_ms": inv.running_at, "end_ms": inv.completed_at, "status": inv.status,
            "sender": inv.invoked_by_target or "ingress",
            "label": _arg_label(inv),
        })
    rows.sort(key=lambda r: (r["key"], r["arrived_ms"], r["arrival"]))
    per_key: dict[str, int] = {}
    for r in rows:  # number each key's invocations in the order they arrived there
        r["arrival"] = per_key[r["key"]] = per_key.get(r["key"], -1) + 1
    return rows


def _arg_label(inv: Any) -> str:
    value = decode_payload(inv.journal[0].msg.value.content) if inv.journal else None
    text = "" if value is None else repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def timeline(rt: Runtime, service: str) -> Timeline:
    return Timeline(service, timeline_data(rt, service))


# ---------------------------------------------------------------------------------------------- HTML views

NESTED_LIMIT = 50  # callee journals expanded inline per journal view; beyond that, their ids are listed


def _badge(status: str) -> str:
    return (f"<span style='background:{STATUS_COLORS.get(status, '#fff')};border:1px solid #ced4da;"
            f"border-radius:8px;padding:0 6px;font-size:11px'>{_html.escape(status)}</span>")


def _short(value: Any, limit: int = 60) -> str:
    text = "" if value is None else repr(value)
    return _html.escape(text if len(text) <= limit else text[: limit - 3] + "...")


def invocations_html(rt: Runtime, limit: int = 200) -> str:
    """A table of invocations, newest last, status as a coloured badge."""
    invs = list(rt.all_invocations())
    shown = invs[-limit:]
    rows = "".join(
        f"<tr><td><code>{inv.id}</code></td><td>{_html.escape(str(inv.target))}</td><td>{_badge(inv.status)}</td>"
        f"<td>{inv.invoked_by_target or inv.invoked_by}</td><td>{max(0, inv.attempts - 1)}</td>"
        f"<td>{_html.escape(str(inv.result)) if inv.completed and not isinstance(inv.result, bytes) else ''}</td></tr>"
        for inv in shown)
    more = f"<p><small>{len(invs) - len(shown)} older invocations not shown</small></p>" if len(invs) > limit else ""
    return ("<table style='font-size:12px'><thead><tr><th>id</th><th>target</th><th>status</th><th>invoked by</th>"
            f"<th>retries</th><th>failure</th></tr></thead><tbody>{rows}</tbody></table>{more}")


def journal_html(rt: Runtime, inv: Any, nested_depth: int = 1) -> str:
    """An invocation's journal: entries in order with type, name, target and payload; failed attempts
    between the entries where they happened; the callee's journal expandable under each call."""
    from .introspect import entry_detail

    errors_after: dict[int, list[Any]] = {}
    for err in inv.errors:
        errors_after.setdefault(err.after_entry, []).append(err)
    head = (f"<div style='font-size:12px'><b>{_html.escape(str(inv.target))}</b> <code>{inv.id}</code> "
            f"{_badge(inv.status)} attempts: {inv.attempts}")
    if inv.completed:
        head += f" result: {_short(_result_text(inv))}"
    parts = [head + "</div>", "<table style='font-size:12px'><thead><tr><th>#</th><th>entry</th><th>name</th>"
                               "<th>target</th><th>payload</th><th>at</th></tr></thead><tbody>"]
    nested = 0
    for i, e in enumerate(inv.journal):
        d = entry_detail(rt, inv, e)
        name = d.get("name", e.name)
        target = d["invoked_target"] or d["promise_name"] or ""
        parts.append(f"<tr><td>{i}</td><td>{_html.escape(e.entry_type)}</td><td>{_html.escape(name or '')}</td>"
                     f"<td>{_html.escape(target)}</td><td>{_short(d['payload'])}</td>"
                     f"<td>{to_iso(e.appended_at)}</td></tr>")
        callee = readmodel.invocation(rt, d["invoked_id"] or "")
        if callee is not None and nested_depth > 0:
            if nested < NESTED_LIMIT:
                inner = journal_html(rt, callee, nested_depth - 1)
                parts.append(f"<tr><td></td><td colspan='5'><details><summary>journal of {callee.id} "
                             f"({_html.escape(str(callee.target))})</summary>{inner}</details></td></tr>")
            nested += 1
        for err in errors_after.get(i, []):
            related = f" at {_html.escape(err.related_command)}" if err.related_command else ""
            parts.append(f"<tr style='color:{CYCLE_COLOR}'><td></td><td colspan='5'>attempt {err.attempt} failed: "
                         f"[{err.code}] {_html.escape(err.message.splitlines()[0] if err.message else '')}"
                         f"{related}</td></tr>")
    parts.append("</tbody></table>")
    if nested > NESTED_LIMIT:
        parts.append(f"<small>{nested - NESTED_LIMIT} more callee journals: open them with rt.invocation(id)</small>")
    return "".join(parts)


def _result_text(inv: Any) -> Any:
    return inv.result if not isinstance(inv.result, bytes) else decode_payload(inv.result)


def to_iso(ms: int) -> str:
    from .runtime.clock import to_datetime
    return to_datetime(ms).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def runtime_html(rt: Runtime) -> str:
    counts = status_counts(rt.all_invocations())
    summary = " ".join(f"{_badge(status)} {n}" for status, n in sorted(counts.items())) or "no invocations yet"
    cycles = rt.deadlocks()
    warn = (f"<p style='color:{CYCLE_COLOR}'><b>{len(cycles)} deadlock(s)</b>: see rt.deadlocks()</p>"
            if cycles else "")
    return (f"<div style='font-size:12px'><b>playground.Runtime</b> · {rt.clock} clock at "
            f"<code>{rt.now.isoformat()}</code> · services: {_html.escape(', '.join(readmodel.services(rt)) or 'none')}"
            f"<br>{summary}{warn}{invocations_html(rt, limit=20)}</div>")


# ---------------------------------------------------------------------------------------------- display


def _pure_renderer() -> str | None:
    """The `graphviz-pure` executable from pip (not on PATH when the venv is not activated)."""
    exe = shutil.which("graphviz-pure")
    if exe:
        return exe
    candidate = Path(sysconfig.get_path("scripts")) / "graphviz-pure"
    return str(candidate) if candidate.exists() else None


def _render(source: str, fmt: str) -> tuple[bytes | None, str]:
    """Render DOT to `fmt` ('svg' or 'png'): (output, renderer) with renderer 'dot' or 'graphviz-pure', or
    (None, 'none')."""
    try:
        return graphviz.Source(source).pipe(fmt), "dot"
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError):
        pass
    exe = _pure_renderer()
    if exe:
        try:
            out = subprocess.run([exe, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=30,
                                 check=True)
            return out.stdout, "graphviz-pure"
        except (OSError, subprocess.SubprocessError):
            pass
    return None, "none"


def to_svg(source: str) -> tuple[str | None, str]:
    """Render DOT to SVG: (svg, renderer) with renderer 'dot' or 'graphviz-pure', or (None, 'none')."""
    out, how = _render(source, "svg")
    return (out.decode("utf-8"), how) if out is not None else (None, how)


def _inline(svg: str) -> str:
    """The <svg> element alone, without the XML prolog and doctype."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


NO_RENDERER = ("no graph renderer found: install graphviz (apt-get install graphviz) or "
               "pip install graphviz-pure to see this as a picture")


def html(source: str, caption: str = "") -> str:
    """HTML for a widget: the SVG, or the DOT source with a hint when nothing can render it."""
    svg, _how = to_svg(source)
    cap = f"<pre style='font-size:12px'>{_html.escape(caption)}</pre>" if caption else ""
    if svg is not None:
        return f"<div>{_inline(svg)}{cap}</div>"
    return f"<div><pre>{_html.escape(source)}</pre><small>{NO_RENDERER}</small>{cap}</div>"


def mimebundle(source: str, text: str) -> dict[str, str]:
    """What a notebook shows for a graph: an SVG image and the same picture as PNG. JupyterLab draws the
    SVG where it trusts the outputs (a notebook run here) and the PNG where it does not (the stored outputs
    of a notebook just opened), so a graph never shows as loose text. Without a renderer: the DOT source and
    an install hint."""
    svg, _how = to_svg(source)
    if svg is None:
        return {"text/plain": f"{text}\n{source}\n{NO_RENDERER}"}
    bundle = {"image/svg+xml": _inline(svg), "text/plain": text}
    png, _how = _render(source, "png")
    if png:
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    return bundle


class Graph(graphviz.Source):
    """A graphviz source that displays without ever raising: SVG and PNG via dot or graphviz-pure, else the
    DOT text."""

    def __init__(self, source: str, title: str = "graph") -> None:
        super().__init__(source)
        self.title = title

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        n = self.source.count("->")
        return mimebundle(self.source, f"<{self.title}, {n} edge{'' if n == 1 else 's'}>")


views.register(sys.modules[__name__])  # the engine's records draw through this module
