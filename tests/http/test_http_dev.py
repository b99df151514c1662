"""`python -m playground dev MODULE[:ATTR]`: the embedded runtime behind Restate's ingress and admin API in
its own process, stopped cleanly by Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def start(*args: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "playground", "dev", "http_services:ALL", "--ingress-port", "0",
                             "--admin-port", "0", *args], cwd=str(HERE), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    line = proc.stdout.readline()
    found = re.search(r"ingress (http://\S+), admin (http://\S+)", line)
    if found is None:
        proc.kill()
        raise AssertionError(f"no ready line, got {line!r} {proc.stdout.read()[-2000:]!r}")
    proc.stdout.readline()  # the hint
    return proc, found.group(1), found.group(2)


def post(url: str, doc: object, headers: dict[str, str] | None = None) -> object:
    req = urllib.request.Request(url, json.dumps(doc).encode(), {"content-type": "application/json",
                                                                 **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_dev_serves_the_ingress_and_admin_api_and_stops_cleanly_on_a_signal(sig) -> None:
    proc, ingress, admin = start()
    try:
        assert post(ingress + "/Greeter/greet", "dev") == "hi dev"
        rows = post(admin + "/query", {"query": "SELECT target FROM sys_invocation"}, {"accept": "application/json"})
        assert rows == {"rows": [{"target": "Greeter/greet"}]}
        with urllib.request.urlopen(admin + "/version", timeout=10) as resp:
            assert json.loads(resp.read())["max_admin_api_version"] == 4
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        assert proc.stdout.read().strip().endswith("stopped")
    finally:
        if proc.poll() is None:
            proc.kill()  # only the child this test started


def test_dev_runs_the_wall_clock_by_default_and_the_virtual_one_on_request() -> None:
    proc, ingress, _ = start("--clock", "virtual")
    try:
        assert post(ingress + "/Greeter/nap", "v") == "rested v"  # an hour's sleep, at once on the virtual clock
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_dev_keeps_state_in_a_store_file_across_runs(tmp_path) -> None:
    store = str(tmp_path / "dev.sqlite")
    for expected in (5, 10):
        proc, ingress, _ = start("--store", store)
        try:
            assert post(ingress + "/Counter/Mary/add", 5) == expected
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0


def test_dev_reports_a_port_in_use_and_exits_1() -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "playground", "dev", "http_services:ALL", "--ingress-port",
                              str(port), "--admin-port", "0"], cwd=str(HERE), capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in out.stderr


async def test_the_http_benchmark_runs_with_a_tiny_n() -> None:
    import importlib.util
    path = HERE.parents[1] / "benchmarks" / "bench_http.py"
    spec = importlib.util.spec_from_file_location("playground_bench_http", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cell, door, cli = await module.cell_and_door(5, cli=False)
    assert cell > 0 and door > 0 and cli is None
