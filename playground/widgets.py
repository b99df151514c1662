"""Notebook widgets: thin views over playground.render that refresh themselves while handlers run.

Each view re-renders when the runtime changed (at most every REFRESH_S seconds, from a timer on the
kernel's event loop, so nothing ever blocks a cell). Buttons schedule their work as tasks on that loop.
Every view can be used alone; `Runtime.dashboard()` puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from datetime import timedelta
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar

import anywidget
import ipywidgets as w
import traitlets

from . import render
from .runtime import readmodel

if TYPE_CHECKING:
    from .runtime.core import Engine as Runtime

REFRESH_S = 0.25

# runtime -> the live views showing it; weak both ways, so closed views and dropped runtimes just go away
_views: weakref.WeakKeyDictionary[Runtime, weakref.WeakSet[_Live]] = weakref.WeakKeyDictionary()
_polling: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _version(rt: Runtime) -> tuple[int, int, int]:
    return readmodel.change_stamp(rt)


class _Live:
    """A view that knows how to re-render itself from the runtime."""

    widget: Any

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._seen: tuple[int, int, int] | None = None
        self.widget._pg_view = self  # the widget keeps its view alive; the registry below is weak
        _views.setdefault(rt, weakref.WeakSet()).add(self)
        _ensure_polling(rt)

    def refresh(self) -> None:  # subclasses draw here
        raise NotImplementedError

    def _tick(self) -> None:
        version = _version(self.rt)
        if version != self._seen:
            self._seen = version
            self.refresh()


def _ensure_polling(rt: Runtime) -> None:
    if rt in _polling:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop (e.g. a plain script): views refresh when asked
    _polling.add(rt)
    ref = weakref.ref(rt)

    def poll() -> None:
        runtime = ref()
        views = _views.get(runtime) if runtime is not None else None
        if runtime is None or not views:
            if runtime is not None:
                _polling.discard(runtime)
            return
        for view in list(views):
            with contextlib.suppress(Exception):  # a view that fails to redraw must not stop the others
                view._tick()
        loop.call_later(REFRESH_S, poll)

    loop.call_later(REFRESH_S, poll)


def _schedule(coro_fn: Callable[[], Any], status: w.HTML | None = None) -> None:
    """Run a runtime coroutine from a button: a task on the kernel's loop; errors show in `status`."""

    async def run() -> None:
        try:
            await coro_fn()
        except Exception as exc:
            if status is not None:
                status.value = f"<span style='color:{render.CYCLE_COLOR}'>{type(exc).__name__}: {exc}</span>"

    try:
        asyncio.get_running_loop().create_task(run())
    except RuntimeError:
        asyncio.run(run())


class ClockView(_Live):
    """Current virtual time, with buttons to advance it and to settle."""

    STEPS: ClassVar[dict[str, timedelta]] = {"+1 min": timedelta(minutes=1), "+1 h": timedelta(hours=1),
                                             "+1 day": timedelta(days=1)}

    def __init__(self, rt: Runtime) -> None:
        self.label = w.HTML()
        self.status = w.HTML()
        buttons = []
        for text, step in self.STEPS.items():
            b = w.Button(description=text, layout=w.Layout(width="80px"))
            b.on_click(lambda _b, step=step: _schedule(lambda: self.rt.advance(step), self.status))
            buttons.append(b)
        settle = w.Button(description="settle", layout=w.Layout(width="80px"))
        settle.on_click(lambda _b: _schedule(self.rt.settle, self.status))
        self.widget = w.HBox([self.label, *buttons, settle, self.status])
        self.widget.add_class("pg-clock")
        super().__init__(rt)
        self.refresh()

    def refresh(self) -> None:
        self.label.value = (f"<b>{self.rt.clock} clock</b> <code class='pg-now'>{self.rt.now.isoformat()}</code>"
                            "&nbsp;")


class InvocationTable(_Live):
    """Invocations with their status; choosing one calls `on_select(id)` (the dashboard opens its journal)."""

    def __init__(self, rt: Runtime, on_select: Callable[[str], None] | None = None) -> None:
        self.html = w.HTML()
        self.picker = w.Dropdown(description="journal of", options=[], layout=w.Layout(width="520px"))
        self.on_select = on_select
        self.picker.observe(self._picked, names="value")
        self.widget = w.VBox([self.html, self.picker])
        self.widget.add_class("pg-invocations")
        super().__init__(rt)
        self.refresh()

    def _picked(self, change: dict[str, Any]) -> None:
        if change["new"] and self.on_select is not None:
            self.on_select(change["new"])

    def refresh(self) -> None:
        self.html.value = render.invocations_html(self.rt)
        options = [(f"{inv.target}  {inv.id}  ({inv.status})", inv.id) for inv in self.rt.all_invocations()]
        current = self.picker.value
        self.picker.options = options
        if current in {v for _, v in options}:
            self.picker.value = current


class JournalView(_Live):
    """One invocation's journal, with failed attempts between entries and callees expandable."""

    def __init__(self, rt: Runtime, invocation_id: str | None = None) -> None:
        self.invocation_id = invocation_id
        self.html = w.HTML()
        self.widget = w.VBox([self.html])
        self.widget.add_class("pg-journal")
        super().__init__(rt)
        self.refresh()

    def show(self, invocation_id: str) -> None:
        self.invocation_id = invocation_id
        self.refresh()

    def refresh(self) -> None:
        inv = readmodel.invocation(self.rt, self.invocation_id or "")
        self.html.value = render.journal_html(self.rt, inv) if inv else "<i>choose an invocation</i>"


class CallGraphView(_Live):
    """Who called whom (graphviz SVG); `aggregate=True` for one node per handler."""

    def __init__(self, rt: Runtime, aggregate: bool = False) -> None:
        self.aggregate = aggregate
        self.html = w.HTML()
        self.widget = w.VBox([self.html])
        self.widget.add_class("pg-callgraph")
        super().__init__(rt)
        self.refresh()

    def refresh(self) -> None:
        self.html.value = render.html(render.call_graph_dot(self.rt, self.aggregate))


class TimelineWidget(anywidget.AnyWidget):
    """The per-key ordering timeline in the browser; Python computes the SVG (render.Timeline)."""

    _esm = """
    function render({ model, el }) {
      const draw = () => {
        el.innerHTML = model.get("svg");
        el.dataset.lanes = String(model.get("lanes"));
      };
      draw();
      model.on("change:svg", draw);
    }
    export default { render };
    """
    svg = traitlets.Unicode("").tag(sync=True)
    lanes = traitlets.Int(0).tag(sync=True)


class TimelineView(_Live):
    """One lane per key of a virtual object: arrival order, queueing, execution spans, and who sent what."""

    def __init__(self, rt: Runtime, service: str) -> None:
        self.service = service
        self.widget = TimelineWidget()
        self.widget.add_class("pg-timeline")
        super().__init__(rt)
        self.refresh()

    def refresh(self) -> None:
        tl = render.timeline(self.rt, self.service)
        self.widget.lanes = len({r["key"] for r in tl.rows})
        self.widget.svg = tl.svg()


class DeadlockView(_Live):
    """Standing deadlocks drawn in red, with a button per member to cancel or kill it."""

    def __init__(self, rt: Runtime) -> None:
        self.box = w.VBox()
        self.status = w.HTML()
        self.widget = w.VBox([self.box, self.status])
        self.widget.add_class("pg-deadlocks")
        super().__init__(rt)
        self.refresh()

    def refresh(self) -> None:
        deadlocks = self.rt.deadlocks()
        if not deadlocks:
            self.box.children = [w.HTML("<i>no deadlocks</i>")]
            return
        children: list[w.Widget] = []
        for d in deadlocks:
            children.append(w.HTML(d.html()))
            for m in d.members:
                cancel = w.Button(description=f"cancel {m.invocation_id[:12]}", tooltip=m.target)
                kill = w.Button(description=f"kill {m.invocation_id[:12]}", button_style="danger", tooltip=m.target)
                cancel.on_click(lambda _b, i=m.invocation_id: self._act(self.rt.cancel, i))
                kill.on_click(lambda _b, i=m.invocation_id: self._act(self.rt.kill, i))
                children.append(w.HBox([w.HTML(f"<code>{m.target}</code>&nbsp;"), cancel, kill]))
        self.box.children = children

    def _act(self, op: Callable[[str], None], invocation_id: str) -> None:
        try:
            op(invocation_id)
        except Exception as exc:
            self.status.value = f"{type(exc).__name__}: {exc}"
        self.refresh()


class Dashboard:
    """Every view of one runtime in one widget: clock on top; invocations with the selected journal, call
    graph, per-key timeline and deadlocks in tabs."""

    def __init__(self, rt: Runtime) -> None:
        self.clock = ClockView(rt)
        self.journal = JournalView(rt)
        self.invocations = InvocationTable(rt, on_select=self.journal.show)
        self.calls = CallGraphView(rt)
        keyed = [name for name, reg in readmodel.services(rt).items() if reg.info.keyed]
        self.timeline = TimelineView(rt, keyed[0]) if keyed else None
        self.deadlocks = DeadlockView(rt)
        tabs = [("Invocations", w.VBox([self.invocations.widget, self.journal.widget])),
                ("Call graph", self.calls.widget)]
        if self.timeline is not None:
            picker = w.Dropdown(options=keyed, description="object")
            timeline = self.timeline

            def pick(change: dict[str, Any]) -> None:
                timeline.service = change["new"]
                timeline.refresh()

            picker.observe(pick, names="value")
            tabs.append(("Timeline", w.VBox([picker, timeline.widget])))
        tabs.append(("Deadlocks", self.deadlocks.widget))
        self.tabs = w.Tab(children=[t for _, t in tabs])
        for i, (title, _) in enumerate(tabs):
            self.tabs.set_title(i, title)
        self.widget = w.VBox([self.clock.widget, self.tabs])
        self.widget.add_class("pg-dashboard")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def refresh(self) -> None:
        for view in (self.clock, self.invocations, self.journal, self.calls, self.timeline, self.deadlocks):
            if view is not None:
                view.refresh()


class ExploreView:
    """An exploration (pg.explore's result) in one widget: the table of outcomes; a picker that shows one
    outcome's per-key timelines (and its cycle, if it deadlocked); and a button that replays it into a live
    runtime whose Dashboard opens below. It takes the exploration as it is: nothing here imports the explorer."""

    def __init__(self, exploration: Any) -> None:
        self.exploration = exploration
        self.table = w.HTML(exploration.table_html())
        options = [(f"{o.value!r}  x{o.count}  schedule {o.schedule!r}", i) for i, o in enumerate(exploration.outcomes)]
        self.picker = w.Dropdown(description="outcome", options=options, layout=w.Layout(width="640px"))
        self.outcome = w.HTML()
        self.status = w.HTML()
        self.replay_button = w.Button(description="replay it", tooltip="a live runtime in this outcome's final state")
        self.replay_button.on_click(lambda _b: _schedule(self.replay, self.status))
        self.live = w.VBox()  # the replayed runtime's Dashboard
        self.replayed: Any = None  # that runtime
        self.picker.observe(lambda _change: self.show(), names="value")
        self.widget = w.VBox([self.table, w.HBox([self.picker, self.replay_button, self.status]), self.outcome,
                              self.live])
        self.widget.add_class("pg-explore")
        self.show()

    def chosen(self) -> Any:
        outcomes = self.exploration.outcomes
        return outcomes[self.picker.value] if outcomes and self.picker.value is not None else None

    def show(self) -> None:
        outcome = self.chosen()
        self.outcome.value = outcome.html() if outcome is not None else "<i>no outcomes</i>"

    async def replay(self) -> None:
        """Replay the chosen outcome and open its runtime's Dashboard below."""
        outcome = self.chosen()
        if outcome is None:
            return
        self.status.value = "<i>replaying...</i>"
        self.replayed = await self.exploration.replay(outcome)
        self.live.children = [Dashboard(self.replayed).widget]
        self.status.value = f"replayed schedule <code>{escape(repr(outcome.schedule))}</code>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def journal_view(rt: Runtime, invocation_id: str) -> w.Widget:
    return JournalView(rt, invocation_id).widget


def call_graph_view(rt: Runtime, aggregate: bool = False) -> w.Widget:
    return CallGraphView(rt, aggregate).widget


def timeline_view(rt: Runtime, service: str) -> w.Widget:
    return TimelineView(rt, service).widget


def deadlock_view(rt: Runtime) -> w.Widget:
    return DeadlockView(rt).widget
