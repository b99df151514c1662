"""The timeline picture: one lane per key of a virtual object or workflow, each invocation's span on the
virtual clock (render.timeline builds its rows from a runtime; this module draws them, as SVG or as HTML
and CSS, and needs nothing else of the playground)."""

from __future__ import annotations

import html as _html
from collections.abc import Callable
from typing import Any

TIMELINE_FONT_PX = 13  # the timeline is our own SVG, sized in px


class Timeline:
    """One lane per key: each invocation's span from start to end on the virtual clock, in arrival order.

    Each invocation gets a text line and, under it, its bar (a dashed line while it was queued), so a label
    never covers a bar. Displays as an SVG image (no renderer needed)."""

    ROW_H = 34  # a text line of TIMELINE_FONT_PX, then a 10 px bar, then a gap

    def __init__(self, service: str, rows: list[dict[str, Any]]) -> None:
        self.service, self.rows = service, rows

    def svg(self, width: int = 760) -> str:
        keys = list(dict.fromkeys(r["key"] for r in self.rows))
        times = [t for r in self.rows for t in (r["arrived_ms"], r["start_ms"], r["end_ms"]) if t is not None]
        font = f"font-family='Helvetica, Arial, sans-serif' font-size='{TIMELINE_FONT_PX}'"
        if not keys or not times:
            return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='30' {font}><text x='4' y='20'>"
                    f"no invocations of {_html.escape(self.service)}</text></svg>")
        x = self._scale(times, width)
        lane_h = 22
        lanes = {k: [r for r in self.rows if r["key"] == k] for k in keys}
        height = len(self.rows) * self.ROW_H + len(keys) * lane_h + 8

        parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' {font}>"]
        y = 4
        for key, rows in lanes.items():
            parts.append(f"<text x='4' y='{y + 15}' font-weight='bold'>{_html.escape(self.service)}/"
                         f"{_html.escape(key)}</text>")
            y += lane_h
            for r in rows:
                parts.extend(self._row(r, x, y, width))
                y += self.ROW_H
        parts.append("</svg>")
        return "".join(parts)

    @staticmethod
    def _scale(times: list[int], width: int) -> Callable[[int | None], float]:
        """Virtual time to x, 12 px in from each side; None (still running) is the latest time."""
        t0, t1 = min(times), max(times)
        span = max(t1 - t0, 1)
        return lambda t: 12 + (width - 24) * (((t if t is not None else t1) - t0) / span)

    @staticmethod
    def _row(r: dict[str, Any], x: Any, y: int, width: int) -> list[str]:
        """The label on the first line (from where the invocation arrived, kept inside the picture), the bar
        on the second."""
        color = "#74c0fc" if r["mode"] == "exclusive" else "#b2f2bb"
        xa, xs, xe = x(r["arrived_ms"]), x(r["start_ms"] or r["arrived_ms"]), x(r["end_ms"])
        text = f"#{r['arrival']} {r['handler']}({r['label']}) from {r['sender']}"
        tx = max(12.0, min(xa, width - 4 - 0.6 * TIMELINE_FONT_PX * len(text)))
        out = [f"<text x='{tx:.1f}' y='{y + 14}'>{_html.escape(text)}</text>"]
        bar_y = y + 19
        if r["start_ms"] is not None and xs > xa:  # time spent queued
            out.append(f"<line x1='{xa:.1f}' y1='{bar_y + 5}' x2='{xs:.1f}' y2='{bar_y + 5}' "
                       f"stroke='#868e96' stroke-dasharray='3,3'/>")
        if r["start_ms"] is not None:
            out.append(f"<rect x='{xs:.1f}' y='{bar_y}' width='{max(xe - xs, 3):.1f}' height='10' "
                       f"rx='3' fill='{color}' stroke='#495057'/>")
        return out

    def html(self, width: int = 760) -> str:
        """The same picture in HTML and inline CSS, which JupyterLab keeps when it sanitizes the outputs of a
        notebook it does not trust yet (an SVG, inline or as an image, it would not show there)."""
        keys = list(dict.fromkeys(r["key"] for r in self.rows))
        times = [t for r in self.rows for t in (r["arrived_ms"], r["start_ms"], r["end_ms"]) if t is not None]
        box = (f"font-family: Helvetica, Arial, sans-serif; font-size: {TIMELINE_FONT_PX}px; width: {width}px; "
               f"color: #212529")
        if not keys or not times:
            return f"<div style='{box}'>no invocations of {_html.escape(self.service)}</div>"
        x = self._scale(times, width)
        parts = [f"<div class='pg-timeline-html' style='{box}'>"]
        for key in keys:
            parts.append(f"<div style='font-weight: bold; height: 22px; line-height: 22px'>"
                         f"{_html.escape(self.service)}/{_html.escape(key)}</div>")
            for r in (r for r in self.rows if r["key"] == key):
                parts.append(self._html_row(r, x, width))
        parts.append("</div>")
        return "".join(parts)

    @staticmethod
    def _html_row(r: dict[str, Any], x: Any, width: int) -> str:
        color = "#74c0fc" if r["mode"] == "exclusive" else "#b2f2bb"
        xa, xs, xe = x(r["arrived_ms"]), x(r["start_ms"] or r["arrived_ms"]), x(r["end_ms"])
        text = f"#{r['arrival']} {r['handler']}({r['label']}) from {r['sender']}"
        tx = max(12.0, min(xa, width - 4 - 0.6 * TIMELINE_FONT_PX * len(text)))
        out = [f"<div style='position: relative; height: {Timeline.ROW_H}px'>"
               f"<div style='position: absolute; left: {tx:.1f}px; top: 0px; white-space: nowrap; "
               f"line-height: 17px'>{_html.escape(text)}</div>"]
        if r["start_ms"] is not None and xs > xa:
            out.append(f"<div style='position: absolute; left: {xa:.1f}px; top: 24px; width: {xs - xa:.1f}px; "
                       f"border-top: 1px dashed #868e96'></div>")
        if r["start_ms"] is not None:
            out.append(f"<div class='pg-bar' style='position: absolute; left: {xs:.1f}px; top: 19px; "
                       f"width: {max(xe - xs, 3):.1f}px; height: 10px; box-sizing: border-box; "
                       f"background-color: {color}; border: 1px solid #495057; border-radius: 3px'></div>")
        out.append("</div>")
        return "".join(out)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        """HTML and CSS, not SVG: the one form a notebook not trusted yet still draws."""
        return {"text/html": self.html(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        keys = len({r["key"] for r in self.rows})
        return f"<timeline of {self.service}: {keys} keys, {len(self.rows)} invocations>"
