"""The tour in a real browser: JupyterLab on 127.0.0.1, Debian's chromium through playwright.

The test starts JupyterLab from this interpreter's venv on a copy of notebooks/, opens the tour in a fresh
workspace, runs every cell through the UI (`notebook:run-all-cells`) and checks in the DOM that each widget
of the "See it: live views" section rendered with the tour's content: the aggregated call graph's nodes, the
Guestbook timeline's lane, the concierge's journal rows, the dashboard's tabs (and that choosing an
invocation there opens its journal, a round trip through the kernel), and the deadlock picture.

Without /usr/bin/chromium (or playwright, or jupyter-lab) the test skips, except under CI, where it fails.
With PLAYGROUND_SCREENSHOTS=1 it also saves a PNG of each widget into docs/screenshots/ (for the README).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "00_tour.ipynb"
CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
JUPYTER_LAB = Path(sys.executable).parent / "jupyter-lab"
SCREENSHOTS = ROOT / "docs" / "screenshots"

CHROMIUM_ARGS = [  # a closed network: keep Chromium from phoning home
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# JupyterLab settings for the run: no news popup over the page, and every cell in the DOM (no windowing),
# so cells further down can be found and photographed.
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

# The handlers the tour defines, as the aggregated call graph names them (one node per Service/handler).
TOUR_HANDLERS = {
    "ingress", "Greeter/greet", "Counter/add", "Counter/get", "Signup/run", "Signup/status",
    "Concierge/welcome", "Planner/plan", "Visitor/sign_twice", "Guestbook/write", "Room/pass_along",
}
WELCOME_JOURNAL = [
    "Command: Input",
    "Command: Call", "Notification: CallInvocationId", "Notification: Call",
    "Command: Call", "Notification: CallInvocationId", "Notification: Call",
    "Command: Output",
]
DASHBOARD_TABS = ["Invocations", "Call graph", "Timeline", "Deadlocks"]

# Cells of interest, found by their source and tagged with data-pg-test so locators can reach their outputs.
CELL_TAGS = {
    "deadlock": "rt.deadlocks()[0]",
    "callgraph": "widgets.call_graph_view(rt, aggregate=True)",
    "timeline": 'widgets.timeline_view(rt, "Guestbook")',
    "journal": "widgets.journal_view(rt, welcome_id)",
    "dashboard": "rt.dashboard()",
}

WAIT_KERNEL_JS = """async () => {
    // JupyterLab may start and replace a kernel right after opening; wait until the
    // session's kernel id is the same twice, one second apart, and the kernel is idle.
    const w = window.jupyterapp.shell.currentWidget;
    await w.context.ready;
    await w.sessionContext.ready;
    let prev = null;
    for (let i = 0; i < 60; i++) {
        const k = w.sessionContext.session?.kernel;
        if (k && k.id === prev && k.status === 'idle') return k.id;
        prev = k ? k.id : null;
        await new Promise(r => setTimeout(r, 1000));
    }
    throw new Error('kernel never settled');
}"""

RUN_STATE_JS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const cells = w.content.widgets.filter(c => c.model.type === 'code');
    const errors = [];
    cells.forEach((c, i) => {
        for (const o of c.model.outputs.toJSON()) {
            if (o.output_type === 'error') errors.push(`code cell ${i}: ${o.ename}: ${o.evalue}`);
        }
    });
    return {
        total: cells.length,
        unexecuted: cells.filter(c => !c.model.executionCount).length,
        status: w.sessionContext.session?.kernel?.status ?? 'none',
        errors,
    };
}"""

TAG_CELLS_JS = """(tags) => {
    const found = {};
    window.jupyterapp.shell.currentWidget.content.widgets.forEach((cell, i) => {
        if (cell.model.type !== 'code') return;
        const src = cell.model.sharedModel.getSource();
        for (const [tag, needle] of Object.entries(tags)) {
            if (src.includes(needle)) { cell.node.dataset.pgTest = tag; found[tag] = i; }
        }
    });
    return found;
}"""


# Legibility, measured as drawn at 100% zoom. An inline SVG (the timeline, the call graph widget): each text's
# font size times the scale from its user units to screen pixels, and every text's box against every bar.
INLINE_SVG_TEXT_JS = """(svg) => {
    const texts = Array.from(svg.querySelectorAll('text')).map(t => {
        const r = t.getBoundingClientRect();
        const px = parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a;
        return {text: t.textContent, px, box: [r.left, r.top, r.right, r.bottom]};
    });
    const bars = Array.from(svg.querySelectorAll('rect')).map(b => {
        const r = b.getBoundingClientRect();
        return [r.left, r.top, r.right, r.bottom];
    });
    return {texts, bars};
}"""

# A graph shown as an SVG image (JupyterLab draws image/svg+xml as an <img>): its SVG parsed from the image's
# source; a font size in the SVG's units times the image's drawn width per unit of its viewBox.
IMG_SVG_JS = """async (img) => {
    const source = await (await fetch(img.src)).text();
    const svg = new DOMParser().parseFromString(source, 'image/svg+xml').documentElement;
    const perUnit = img.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    const sizes = Array.from(svg.querySelectorAll('text')).map(t => parseFloat(t.getAttribute('font-size')));
    return {
        nodes: svg.querySelectorAll('g.node').length,
        text: svg.textContent,
        minPx: Math.min(...sizes) * perUnit,
    };
}"""

MIN_TEXT_PX = 12


def _overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing() -> list[str]:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        missing.append(f"chromium at {CHROMIUM} (apt-get install chromium fonts-liberation)")
    if not JUPYTER_LAB.exists():
        missing.append(f"jupyter-lab in {JUPYTER_LAB.parent} (pip install -e '.[test]')")
    return missing


def _require_browser_stack() -> None:
    missing = _missing()
    if not missing:
        return
    reason = "browser test needs " + " and ".join(missing)
    if _ci():
        pytest.fail(reason + " (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of notebooks/."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "notebooks"
        shutil.copytree(ROOT / "notebooks", self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        settings = tmp / "lab-settings"
        settings.mkdir()
        (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "jupyterlab.log"
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), PYTHONUNBUFFERED="1")
        env["PATH"] = f"{JUPYTER_LAB.parent}{os.pathsep}{env.get('PATH', '')}"  # the venv first, as if activated
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(JUPYTER_LAB), "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={self.port}",
             "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
             f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
             f"--LabApp.app_settings_dir={settings}",  # holds overrides.json; the venv stays untouched
             f"--LabApp.user_settings_dir={tmp / 'user-settings'}",
             f"--LabApp.workspaces_dir={tmp / 'workspaces'}"],
            cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter-lab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"jupyter-lab did not answer /api/status within {timeout:.0f}s:\n{self.log()}")

    def stop(self) -> None:
        """Shut the kernels down through the API, then end the server by its pid."""
        if self.proc.poll() is None:
            try:
                for kernel in self.api("/api/kernels"):
                    self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def running_lab(tmp: Path) -> Iterator[Lab]:
    server = Lab(tmp)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _run_tour(page: Any, lab: Lab, timeout: float = 60) -> dict[str, int]:
    """Open the tour in a fresh workspace, run all cells through the UI, wait until all ran and the kernel
    is idle. Returns the tagged cells' indices."""
    page.goto(f"{lab.url}/lab/workspaces/pg-test-{os.getpid()}/tree/{NOTEBOOK}?reset&token={lab.token}")
    page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(f"window.jupyterapp.shell.currentWidget?.context?.path === {NOTEBOOK!r}",
                           timeout=60_000)
    page.evaluate(WAIT_KERNEL_JS)
    page.evaluate("window.jupyterapp.shell.collapseLeft()")
    tagged = page.evaluate(TAG_CELLS_JS, CELL_TAGS)
    assert set(tagged) == set(CELL_TAGS), f"tour cells not found: {set(CELL_TAGS) - set(tagged)}"
    # the tour is stored with its outputs: clear them, so that "every cell has run" below means run now
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(f"({RUN_STATE_JS})().unexecuted === ({RUN_STATE_JS})().total", timeout=15_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_STATE_JS)
        if state["status"] == "idle" and (state["unexecuted"] == 0 or state["errors"]):
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"the tour did not finish running within {timeout:.0f}s: {state}\n{lab.log()}")
    assert not state["errors"], f"cells raised: {state['errors']}"
    assert state["unexecuted"] == 0, f"{state['unexecuted']} of {state['total']} code cells never ran"
    return tagged


def _outputs(page: Any, tag: str) -> Any:
    return page.locator(f'.jp-Cell[data-pg-test="{tag}"] .jp-OutputArea-output')


def test_the_tour_runs_in_jupyterlab_and_every_widget_renders_its_content(tmp_path: Path) -> None:
    _require_browser_stack()  # in the test itself, so under CI a missing piece is a FAILED test
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with running_lab(tmp_path) as lab:
        _check_tour_in_browser(lab, sync_playwright)
        _check_untrusted_lesson(lab, sync_playwright)
    print(f"tour in the browser: {time.monotonic() - t0:.1f}s")


def _check_tour_in_browser(lab: Lab, sync_playwright: Any) -> None:
    shots = os.environ.get("PLAYGROUND_SCREENSHOTS") == "1"
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            _run_tour(page, lab)

            # -- no error anywhere: no traceback on stderr, no widget that failed to load or render
            for text in page.locator(
                    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts():
                assert "Traceback" not in text and "Error" not in text, f"stderr output in the tour:\n{text[:800]}"
            for text in page.locator(".jp-OutputArea-output").all_inner_texts():
                for bad in ("Error displaying widget", "Error rendering", "Failed to load model class",
                            "Loading widget...", "Traceback"):
                    assert bad not in text, f"an output shows {bad!r}:\n{text[:800]}"

            # -- the deadlock picture: the cycle as SVG, kitchen -> hall -> kitchen (queued for the lock)
            # (an SVG image: it shows the same in a notebook JupyterLab does not trust, where HTML is sanitized)
            deadlock = _outputs(page, "deadlock").locator("img").first
            deadlock.wait_for(timeout=15_000)
            assert (deadlock.get_attribute("src") or "").startswith("data:image/svg+xml")
            drawn = page.evaluate(IMG_SVG_JS, deadlock.element_handle())
            picture = drawn["text"]
            assert drawn["nodes"] == 4, picture  # three invocations and the kitchen's lock
            assert picture.count("Room/kitchen/pass_along") == 2 and "Room/hall/pass_along" in picture, picture
            assert "lock Room/kitchen" in picture and "queued for" in picture and "held by" in picture, picture
            assert drawn["minPx"] >= MIN_TEXT_PX, f"deadlock graph text drawn at {drawn['minPx']:.1f} px"

            # -- the aggregated call graph: one graphviz node per handler the tour defined
            graph = _outputs(page, "callgraph").locator(".pg-callgraph svg").first
            graph.wait_for(timeout=15_000)
            nodes = graph.locator("g.node")
            assert nodes.count() >= len(TOUR_HANDLERS)
            titles = {t.strip() for t in nodes.locator("title").all_text_contents()}
            assert titles == TOUR_HANDLERS, f"call graph nodes: {sorted(titles)}"
            assert graph.locator("g.edge").count() >= 12
            small = [t for t in page.evaluate(INLINE_SVG_TEXT_JS, graph.element_handle())["texts"]
                     if t["px"] < MIN_TEXT_PX]
            assert not small, f"call graph text under {MIN_TEXT_PX} px: {small[:3]}"

            # -- the Guestbook timeline (anywidget): one lane (key Ann), a bar per invocation, in order
            timeline = _outputs(page, "timeline").locator(".pg-timeline").first
            timeline.locator("svg").wait_for(timeout=15_000)
            assert timeline.get_attribute("data-lanes") == "1"
            assert timeline.locator("svg rect").count() == 2
            text = timeline.locator("svg").text_content()
            assert "Guestbook/Ann" in text
            assert text.index("write('call A')") < text.index("write('call B')"), text
            drawn = page.evaluate(INLINE_SVG_TEXT_JS, timeline.locator("svg").element_handle())
            small = [t for t in drawn["texts"] if t["px"] < MIN_TEXT_PX]
            assert not small, f"timeline text under {MIN_TEXT_PX} px: {small}"
            covered = [(t["text"], bar) for t in drawn["texts"] for bar in drawn["bars"] if _overlaps(t["box"], bar)]
            assert not covered, f"timeline labels over bars: {covered}"

            # -- the concierge's journal: header + its 8 entries, the two callees' journals expandable
            journal = _outputs(page, "journal").locator(".pg-journal").first
            journal.locator("table").first.wait_for(timeout=15_000)
            rows = page.evaluate("""(el) => {
                const table = el.querySelector('table');
                return Array.from(table.rows).filter(r => r.closest('table') === table)
                    .map(r => Array.from(r.cells).map(c => c.textContent.trim()));
            }""", journal.element_handle())
            header, *body = rows
            assert header == ["#", "entry", "name", "target", "payload", "at"]
            entries = [r for r in body if r and r[0].isdigit()]
            assert [r[1] for r in entries] == WELCOME_JOURNAL, rows
            assert [r[0] for r in entries] == [str(i) for i in range(8)]
            assert len(rows) == 1 + 8 + 2, rows  # + a "journal of <callee>" row under each call
            assert "Concierge/welcome" in journal.inner_text() and "completed" in journal.inner_text()

            # -- the dashboard: clock, tabs; choosing an invocation opens its journal (through the kernel)
            dash = _outputs(page, "dashboard").locator(".pg-dashboard").first
            dash.wait_for(timeout=15_000)
            tabs = [t.strip() for t in dash.locator(".lm-TabBar-tab .lm-TabBar-tabLabel").all_inner_texts()]
            assert tabs == DASHBOARD_TABS
            assert "2026-01-01T05:00:00+00:00" in dash.locator(".pg-clock .pg-now").inner_text()
            table = dash.locator(".pg-invocations table").first
            assert table.locator("tbody tr").count() >= 20
            assert "Concierge/welcome" in table.inner_text()
            picker = dash.locator(".pg-invocations select").first
            welcome = next(o for o in picker.locator("option").all_text_contents() if "Concierge/welcome" in o)
            picker.select_option(label=welcome)
            dash_journal = dash.locator(".pg-journal")
            dash_journal.get_by_text("Notification: CallInvocationId").first.wait_for(timeout=15_000)
            assert dash_journal.locator("table").first.locator(":scope > tbody > tr").count() == 8 + 2
            assert dash.locator(".pg-timeline").first.get_attribute("data-lanes") == "3"  # Counter: Mary/Ann/Bob
            assert dash.locator(".pg-deadlocks").first.get_by_text("no deadlocks").count() == 1

            if shots:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                # JupyterLab scrolls inside a fixed-size page: an element taller than the viewport (the
                # dashboard with a journal open) would be cut off, so make the window tall enough first
                page.set_viewport_size({"width": 1280, "height": 2400})
                page.wait_for_timeout(500)
                graph.screenshot(path=SCREENSHOTS / "call-graph.png")
                timeline.locator("svg").screenshot(path=SCREENSHOTS / "timeline.png")
                journal.screenshot(path=SCREENSHOTS / "journal.png")
                dash.screenshot(path=SCREENSHOTS / "dashboard.png")
                _outputs(page, "deadlock").first.screenshot(path=SCREENSHOTS / "deadlock.png")
        except BaseException:
            errors = "\n".join(c for c in console if c.startswith("error"))
            print(f"browser console errors:\n{errors}\njupyterlab log:\n{lab.log()}", file=sys.stderr)
            raise
        finally:
            browser.close()


UNTRUSTED_LESSON = "04_ordering.ipynb"  # stored with a wait-for graph and a timeline

STORED_OUTPUTS_JS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const cells = w.content.widgets.filter(c => c.model.type === 'code' && c.model.outputs.length > 0);
    return {cells: cells.length, trusted: cells.filter(c => c.model.trusted).length};
}"""

TIMELINE_HTML_JS = """(root) => {
    const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const bars = Array.from(root.querySelectorAll('.pg-bar'));
    const labels = Array.from(root.querySelectorAll('div')).filter(
        d => d.children.length === 0 && d.textContent.trim() && !bars.includes(d));
    return {
        bars: bars.map(box).filter(b => b[2] - b[0] > 0 && b[3] - b[1] > 0),
        labels: labels.map(d => ({text: d.textContent, px: parseFloat(getComputedStyle(d).fontSize), box: box(d)})),
    };
}"""


def _check_untrusted_lesson(lab: Lab, sync_playwright: Any) -> None:
    """A lesson just opened, not run: JupyterLab does not trust its stored outputs, so it sanitizes their HTML
    and draws no SVG. Its graphs must show as pictures (the PNG) and the timeline as its HTML, legibly."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{lab.url}/lab/workspaces/pg-lesson-{os.getpid()}/tree/{UNTRUSTED_LESSON}?reset"
                      f"&token={lab.token}")
            page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
            page.wait_for_function(f"window.jupyterapp.shell.currentWidget?.context?.path === "
                                   f"{UNTRUSTED_LESSON!r}", timeout=60_000)
            page.wait_for_selector(".jp-OutputArea-output", timeout=60_000)
            stored = page.evaluate(STORED_OUTPUTS_JS)
            assert stored["cells"] > 0 and stored["trusted"] == 0, stored  # really the untrusted case
            images = page.locator(".jp-OutputArea-output img")
            images.first.wait_for(timeout=15_000)
            sources = [img.get_attribute("src") or "" for img in images.all()]
            assert sources and all(src.startswith("data:image/png") for src in sources), sources[:2]
            for img in images.all():
                assert page.evaluate("(i) => i.complete && i.naturalWidth > 0", img.element_handle())
            for text in page.locator(".jp-OutputArea-output").all_inner_texts():
                assert "stroke" not in text and "</" not in text, f"loose SVG in an output:\n{text[:300]}"
            timeline = page.locator(".jp-OutputArea-output .pg-timeline-html").first
            timeline.wait_for(timeout=15_000)
            drawn = page.evaluate(TIMELINE_HTML_JS, timeline.element_handle())
            assert len(drawn["bars"]) >= 5, drawn
            small = [t for t in drawn["labels"] if t["px"] < MIN_TEXT_PX]
            assert not small, f"timeline text under {MIN_TEXT_PX} px: {small[:3]}"
            covered = [t["text"] for t in drawn["labels"] for bar in drawn["bars"] if _overlaps(t["box"], bar)]
            assert not covered, f"timeline labels over bars: {covered}"
            if os.environ.get("PLAYGROUND_SCREENSHOTS") == "1":
                page.set_viewport_size({"width": 1280, "height": 2400})
                timeline.screenshot(path=SCREENSHOTS / "timeline-untrusted.png")
        finally:
            browser.close()
