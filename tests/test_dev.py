"""`./dev`, the newcomer's entry point: the tour takes JupyterLab's arguments and prints a URL that opens the
tour itself when there is no browser to open.

These run the script as a person would, against the repository's own .venv (which `./dev test` creates). Without
it, they skip outside CI and fail under CI.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOUR_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/lab/tree/notebooks/00_tour\.ipynb)\?token=([0-9a-f]+)")


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_lab() -> None:
    if not (ROOT / ".venv" / "bin" / "jupyter-lab").exists():
        reason = "./dev tour needs the repository's .venv with jupyterlab (run ./dev test once)"
        if _ci():
            pytest.fail(reason + " (CI is set, so this fails instead of skipping)", pytrace=False)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output, line by line, read on a thread so the test can wait with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], pattern: re.Pattern[str], timeout: float) -> tuple[re.Match[str], str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line == "":
            break
        seen.append(line)
        match = pattern.search(line)
        if match:
            return match, "".join(seen)
    raise AssertionError(f"no line matching {pattern.pattern} within {timeout:.0f} s:\n{''.join(seen)}")


def _get(url: str, timeout: float) -> tuple[int, str, str]:
    """GET the URL, retrying while the port is not accepting yet (the URL is printed as the server starts to
    listen); returns the status, the path answered after redirects, and the page."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, urllib.parse.urlparse(resp.url).path, resp.read().decode("utf-8", "replace")
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_dev_tour_passes_its_arguments_to_jupyterlab_and_prints_a_url_that_opens_the_tour(tmp_path: Path) -> None:
    _require_lab()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")  # the server's connection files, not the user's
    proc = subprocess.Popen([str(ROOT / "dev"), "tour", "--port", str(port), "--no-browser"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        match, seen = _wait_for(_lines_of(proc), TOUR_URL, timeout=120)
        assert "No browser to open here" in seen, seen  # says which URL to open, before JupyterLab prints it
        assert int(match.group(1)) == port, seen  # --port reached JupyterLab (it used to start on 8888)
        status, path, page = _get(match.group(0), timeout=30)  # the URL as printed opens the tour
        assert status == 200 and path == match.group(2), (status, path)
        assert "JupyterLab" in page
        # ... and that path is the tour notebook in the server's root (JupyterLab answers 200 for any path)
        contents = f"http://127.0.0.1:{port}/api/contents/notebooks/00_tour.ipynb?content=0&token={match.group(3)}"
        status, _path, body = _get(contents, timeout=10)
        assert status == 200 and '"type": "notebook"' in body.replace('":"', '": "'), body[:300]
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # ./dev execs jupyter: this pid is the server
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
