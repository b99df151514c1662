"""Pure renderers: the call graph (per invocation and per handler) and the per-key timeline data."""

from __future__ import annotations

from datetime import timedelta

import pytest
import restate

import playground as pg

box = restate.VirtualObject("RBox")


@box.handler()
async def put(ctx: restate.ObjectContext, item: str) -> None:
    await ctx.sleep(timedelta(minutes=1))
    ctx.set("items", (await ctx.get("items") or []) + [item])


@box.handler(kind="shared")
async def peek(ctx: restate.ObjectSharedContext) -> list:
    return await ctx.get("items") or []


sender = restate.Service("RSender")


@sender.handler()
async def fan_out(ctx: restate.Context, key: str) -> list:
    ctx.object_send(put, key=key, arg="A")
    ctx.object_send(put, key=key, arg="later", send_delay=timedelta(hours=2))
    return await ctx.object_call(peek, key=key, arg=None)


@pytest.fixture
async def rt() -> pg.Runtime:
    """A box key that got sends from ingress and from a handler (one of them delayed) and a shared call."""
    rt = pg.Runtime(box, sender)
    await rt.object_send(put, key="k", arg="first")
    await rt.settle()
    await rt.service_call(fan_out, arg="k")
    await rt.object_send(put, key="k", arg="other", send_delay=timedelta(minutes=30))
    await rt.advance(timedelta(hours=3))
    return rt


def test_the_call_graph_has_a_node_per_invocation_under_ingress_with_call_and_send_edges(rt: pg.Runtime) -> None:
    dot = pg.render.call_graph_dot(rt)
    ids = list(rt.invocations().id)
    assert all(f'"{i}" [label=' in dot for i in ids)
    root = rt.invocations().query("target == 'RSender/fan_out'").id.iloc[0]
    lines = dot.splitlines()
    from_root = [line for line in lines if line.strip().startswith(f'"{root}" ->')]
    assert sorted("dashed" in line for line in from_root) == [False, True, True]  # one call, two sends
    assert any('label="after 2 h"' in line for line in from_root)
    assert any(line.strip().startswith('"ingress" ->') and 'label="after 30 min"' in line and "dashed" in line
               for line in lines)
    assert 'RSender/fan_out\\n' in dot and "completed" in dot


def test_the_per_handler_view_counts_edges(rt: pg.Runtime) -> None:
    dot = pg.render.call_graph_dot(rt, aggregate=True)
    assert '"RSender/fan_out" -> "RBox/put" [style=dashed, label="2x"]' in dot
    assert '"RSender/fan_out" -> "RBox/peek" [style=solid, label="1x"]' in dot
    assert '"ingress" -> "RBox/put" [style=dashed, label="2x"]' in dot


def test_timeline_data_gives_each_key_its_invocations_with_spans_on_the_virtual_clock(rt: pg.Runtime) -> None:
    rows = pg.render.timeline_data(rt, "RBox")
    puts = [r for r in rows if r["handler"] == "put"]
    assert [r["label"] for r in puts] == ["'first'", "'A'", "'other'", "'later'"]  # arrival on the clock
    assert {r["mode"] for r in rows} == {"exclusive", "shared"}
    assert [r["sender"] for r in puts] == ["ingress", "RSender/fan_out", "ingress", "RSender/fan_out"]
    spans = [(r["start_ms"], r["end_ms"]) for r in puts]
    assert all(s < e for s, e in spans) and all(spans[i][1] <= spans[i + 1][0] for i in range(3))  # one at a time
    peek_row = next(r for r in rows if r["handler"] == "peek")
    assert peek_row["start_ms"] < puts[0]["end_ms"]  # the shared handler ran beside the lock holder
    svg = pg.render.timeline(rt, "RBox").svg()
    assert svg.startswith("<svg") and svg.count("<rect") == 5 and "RBox/k" in svg
    assert "no invocations" in pg.render.timeline(rt, "Nope").svg()


def _svg_boxes(svg: str) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float, float]], float]:
    """(text baselines as (x, y, font px), bar rects as (x, y, w, h), the root font size) of a timeline SVG."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    size = float(root.get("font-size"))
    texts = [(float(t.get("x")), float(t.get("y")), float(t.get("font-size", size))) for t in root.iter(f"{ns}text")]
    rects = [tuple(float(r.get(a)) for a in ("x", "y", "width", "height")) for r in root.iter(f"{ns}rect")]
    return texts, rects, size


def test_timeline_text_is_at_least_12_px_and_no_label_lies_over_a_bar(rt: pg.Runtime) -> None:
    texts, rects, size = _svg_boxes(pg.render.timeline(rt, "RBox").svg())
    assert size >= 12 and all(px >= 12 for _x, _y, px in texts)
    assert len(rects) == 5
    for _x, baseline, px in texts:  # a line of text spans from its ascent (about 0.8 em up) to its descent
        top, bottom = baseline - 0.8 * px, baseline + 0.25 * px
        for _rx, ry, _rw, rh in rects:
            assert bottom <= ry or top >= ry + rh, f"text at y={baseline} overlaps the bar at y={ry}..{ry + rh}"


def test_graphs_display_as_svg_and_png_images_not_html(rt: pg.Runtime) -> None:
    """A notebook that JupyterLab does not trust yet (just opened, not run) sanitizes HTML, and an SVG inside
    it shows as loose text; it does not draw SVG images either. An SVG image shows where it is trusted, a PNG
    everywhere, and HTML with inline CSS (the timeline) everywhere."""
    bundle = pg.render.call_graph(rt)._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "image/png", "text/plain"}
    assert bundle["image/svg+xml"].startswith("<svg") and "RBox/k/put" in bundle["image/svg+xml"]
    import base64
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    tl = pg.render.timeline(rt, "RBox")._repr_mimebundle_()  # our own drawing: HTML and CSS, no SVG at all
    assert set(tl) == {"text/html", "text/plain"} and "<svg" not in tl["text/html"]
    assert tl["text/html"].count("class='pg-bar'") == 5 and "RBox/k" in tl["text/html"]


def test_without_a_renderer_a_graph_shows_its_dot_source_and_a_hint(monkeypatch) -> None:
    monkeypatch.setattr(pg.render, "_pure_renderer", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    bundle = pg.render.Graph('digraph { "a" -> "b" }', "g")._repr_mimebundle_()
    assert set(bundle) == {"text/plain"}
    assert '"a" -> "b"' in bundle["text/plain"] and "install graphviz" in bundle["text/plain"]
