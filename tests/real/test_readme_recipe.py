"""The README's "Moving to a real Restate server", run as written: its three commands, from its code block,
in the repository's directory (a fresh clone has .venv once `./dev test` has run, as in CI).

1. `./dev server ...` in the background until it says ready, 2. `./dev serve ...` until it says registered,
3. the `curl` call, whose answer must be the Counter's total. Everything started is stopped by pid at the end.
The recipe's ports are used as written when they are free; when another program holds one of them (a shared
developer machine), each number is replaced by a free port everywhere in the recipe. Without the real server
(and no npm to install it) the test skips outside CI and fails under CI.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from playground import real

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Moving to a real Restate server"
NODE_PORT = 5122  # `server`'s default --node-port, not in the recipe


def recipe() -> list[str]:
    """The commands of the first ```bash block under SECTION, comments removed."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(SECTION):], re.S)
    assert block, f"no bash block under {SECTION!r}"
    return [" ".join(shlex.split(line, comments=True)) for line in block.group(1).splitlines() if line.strip()]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _with_free_ports(commands: list[str]) -> list[str]:
    """The recipe as written if its ports are free, else with each port number replaced by a free port."""
    ports = sorted({int(p) for p in re.findall(r"(?<![\d.])(\d{4,5})(?![\d.])", " ".join(commands))})
    if all(_port_free(p) for p in ports + [NODE_PORT]):
        return commands
    swap = {p: real.free_port() for p in ports}
    out = [re.sub(r"(?<![\d.])(\d{4,5})(?![\d.])", lambda m: str(swap.get(int(m.group(1)), m.group(1))), c)
           for c in commands]
    out[0] += f" --node-port {real.free_port()}"
    return out


def _require_server() -> None:
    try:
        real.find_server_binary(install=True)
    except real.RestateServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the real Restate server is required under CI but is unavailable: {exc}", pytrace=False)
        pytest.skip(f"no real Restate server: {exc}")


def _start(command: str, ready: str, timeout: float = 120) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a long-running command of the recipe; return once a line of its output contains `ready`."""
    proc = subprocess.Popen(shlex.split(command), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(ready in line for line in lines):
        if time.monotonic() > deadline or proc.poll() is not None:
            _stop(proc)
            raise AssertionError(f"{command!r} never printed {ready!r}:\n{''.join(lines)}")
        lines.append(proc.stdout.readline())  # type: ignore[union-attr]
    return proc, lines


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)  # ./dev execs python: this pid is the server or the app
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=10)


def test_the_readme_recipe_serves_the_example_counter_to_a_real_server_and_curl_gets_its_answer() -> None:
    _require_server()
    commands = recipe()
    assert len(commands) == 3, commands  # server, serve, call
    server_cmd, serve_cmd, call_cmd = _with_free_ports(commands)
    server, lines = _start(server_cmd, " ready: ingress ")
    server_pid = int(lines[-1].split("pid ")[1].split(")")[0])
    try:
        app, app_lines = _start(serve_cmd, "registered with ")
        try:
            assert app_lines[0].startswith("serving Counter on http://127.0.0.1:"), app_lines
            answers = [subprocess.run(shlex.split(call_cmd), capture_output=True, text=True, timeout=60, check=True)
                       .stdout.strip() for _ in range(2)]
            assert answers == ["5", "10"], answers  # the Counter kept Mary's total between the two calls
        finally:
            assert _stop(app) == 0
    finally:
        assert _stop(server) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)  # the restate-server process went with it
