"""The real engine beside the playground: `playground.real` starts the npm restate-server with no Docker,
serves the same service objects with hypercorn, registers them, and the ingress gives the same answers as
the embedded runtime.

The server comes from the `restate_server` fixture of the package's pytest plugin: one server for the
session. Without the binary (and no npm to install it) these tests skip with the reason; under CI they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import restate

import playground as pg
from playground import real
from playground.pytest_plugin import start_real_server

greeter = restate.Service("RealGreeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def fail(ctx: restate.Context, why: str) -> str:
    raise restate.TerminalError(f"nope: {why}", 422)


counter = restate.VirtualObject("RealCounter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    total = (await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


napper = restate.Service("RealNapper")


@napper.handler()
async def nap(ctx: restate.Context, millis: int) -> str:
    await ctx.sleep(timedelta(milliseconds=millis))
    return "rested"


def post(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Plain urllib, as a user without an HTTP client package would call the ingress."""
    hdrs = {"content-type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=body, method="POST", headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def eventually(check, what: str, timeout: float = 10.0) -> None:
    """Poll `check()` (a real server changes state on its own time) until it is true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not true after {timeout:.0f} s"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def deployed(restate_server):
    restate_server.register(greeter, counter)
    return restate_server


async def embedded_answers() -> dict[str, object]:
    rt = pg.Runtime(greeter, counter)
    out: dict[str, object] = {"greet": await rt.service_call(greet, arg="world")}
    out["adds"] = [await rt.object_call(add, key="Mary", arg=n) for n in (5, 1, 10)]
    out["state"] = rt.state("RealCounter", "Mary")
    try:
        await rt.service_call(fail, arg="x")
    except restate.TerminalError as exc:
        out["error"] = (exc.status_code, exc.message)
    for svc, handler in (("NoSuch", "x"), ("RealGreeter", "nosuch")):
        try:
            await rt.generic_call(svc, handler, b'"x"')
        except restate.TerminalError as exc:
            out[f"404 {svc}/{handler}"] = (exc.status_code, exc.message)
    return out


async def test_same_answers_as_the_embedded_runtime(deployed):
    ingress = deployed.ingress_url
    status, body = post(f"{ingress}/RealGreeter/greet", b'"world"')
    assert status == 200
    got: dict[str, object] = {"greet": json.loads(body)}
    got["adds"] = [json.loads(post(f"{ingress}/RealCounter/Mary/add", str(n).encode())[1]) for n in (5, 1, 10)]
    rows = deployed.query("SELECT key, value_utf8 FROM state WHERE service_name = 'RealCounter' "
                          "AND service_key = 'Mary'")
    got["state"] = {r["key"]: json.loads(r["value_utf8"]) for r in rows}
    status, body = post(f"{ingress}/RealGreeter/fail", b'"x"')
    doc = json.loads(body)
    got["error"] = (status, doc["message"])
    assert doc["code"] == status
    for svc, handler in (("NoSuch", "x"), ("RealGreeter", "nosuch")):
        status, body = post(f"{ingress}/{svc}/{handler}", b'"x"')
        got[f"404 {svc}/{handler}"] = (status, json.loads(body)["message"])

    assert got == await embedded_answers()
    assert got["adds"] == [5, 6, 16] and got["error"] == (422, "nope: x")


def test_sends_and_delayed_sends(deployed):
    sent = deployed.send("RealCounter", "add", 2, key="Sam", delay=timedelta(milliseconds=300))
    assert sent["status"] == "Accepted" and sent["invocationId"].startswith("inv_")
    assert "executionTime" in sent
    def status_of():
        return deployed.query(f"SELECT status FROM sys_invocation WHERE id = '{sent['invocationId']}'")
    assert status_of() == [{"status": "scheduled"}]
    eventually(lambda: status_of() == [{"status": "completed"}], f"the delayed send completed ({status_of()})")
    assert deployed.call("RealCounter", "add", 0, key="Sam") == 2


def test_stopping_a_served_app_cuts_off_a_sleeping_invocation_and_the_server_retries_it(restate_server):
    """A sleeping invocation holds its HTTP/2 stream open; stop() gives it a grace period, then ends it, and
    the serving thread is gone (it used to outlive stop() for as long as the sleep lasted)."""
    app = real.serve(napper)
    restate_server.server.register(app.url)
    sent = restate_server.send("RealNapper", "nap", 60_000)
    def row():
        return restate_server.query(f"SELECT status, retry_count FROM sys_invocation "
                                           f"WHERE id = '{sent['invocationId']}'")[0]
    eventually(lambda: row()["status"] == "running", "the invocation is running")
    thread = app._thread
    app.stop()
    assert thread is not None and not thread.is_alive()
    again = real.serve(napper, port=app.port)  # the same address: the server's retry finds it
    try:
        eventually(lambda: (r := row())["status"] == "running" and (r.get("retry_count") or 0) >= 1,
                   "the server retried the invocation on the new app")
    finally:
        real.http_request("PATCH", f"{restate_server.admin_url}/invocations/{sent['invocationId']}/kill")
        again.stop()


def loaded_config(server: real.RestateServer) -> dict:
    """The configuration restate-server itself loads from the environment `server` runs it with
    (`restate-server --dump-config`), parsed."""
    binary = real.find_server_binary(install=False)
    out = subprocess.run([str(binary), "--dump-config", "--no-logo"], env=server.environment(), capture_output=True,
                         text=True, timeout=60, check=True, stdin=subprocess.DEVNULL)
    return tomllib.loads(out.stdout)


def test_the_server_is_the_pinned_npm_build_on_loopback(deployed):
    version = json.loads(urllib.request.urlopen(deployed.admin_url + "/version", timeout=10).read())
    if os.environ.get("PLAYGROUND_RESTATE_VERSION", real.SERVER_VERSION) == real.SERVER_VERSION:
        assert version["version"] == real.SERVER_VERSION
    assert deployed.ingress_url.startswith("http://127.0.0.1:")
    loaded = loaded_config(deployed.server)
    assert (loaded["bind-ip"], loaded["listen-mode"], loaded["disable-telemetry"]) == ("127.0.0.1", "tcp", True)
    assert loaded["default-num-partitions"] == 2  # the server's own default is 24
    assert loaded["admin"]["bind-port"] == deployed.server.admin_port
    assert loaded["ingress"]["bind-port"] == deployed.server.ingress_port


def test_the_configuration_reaches_the_server_as_restate_environment_variables(monkeypatch):
    monkeypatch.setenv("RESTATE_DEFAULT_NUM_PARTITIONS", "7")  # the caller's RESTATE_* never leak in
    server = real.RestateServer(ingress_port=18080, config={"worker": {"cleanup-interval": timedelta(seconds=1),
                                                                        "invoker": {"in-memory-queue-length-limit": 9}},
                                                             "admin": {"disable-web-ui": False}},
                                env={"RESTATE_LOG_FILTER": "info"})
    env = server.environment()
    assert env["RESTATE_WORKER__CLEANUP_INTERVAL"] == "1000ms"
    assert env["RESTATE_WORKER__INVOKER__IN_MEMORY_QUEUE_LENGTH_LIMIT"] == "9"
    assert env["RESTATE_ADMIN__DISABLE_WEB_UI"] == "false"  # config= overrides the generated default
    assert env["RESTATE_INGRESS__BIND_PORT"] == "18080"
    assert env["RESTATE_DEFAULT_NUM_PARTITIONS"] == "2"
    assert env["RESTATE_LOG_FILTER"] == "info"  # env= overrides both
    assert "RESTATE_ADMIN__BIND_PORT" not in env  # not chosen yet: the server's default until start()


@pytest.mark.parametrize(("config", "words"), [
    ({"worker": {"cleanup-interval": object()}}, "config 'worker.cleanup-interval' must be a str, number"),
    ({1: "x"}, "config keys must be non-empty strings"),
    ("worker.cleanup-interval=1s", "config must be a dict"),
])
def test_a_configuration_the_server_cannot_be_given_is_a_type_error_before_anything_starts(config, words):
    with pytest.raises(TypeError, match=words):
        real.RestateServer(config=config)


def test_a_server_started_and_stopped_leaves_no_process_behind(restate_server):
    # restate_server: skips/fails as the other tests do when there is no binary
    with real.RestateServer(config={"worker": {"cleanup-interval": "1s"}}) as server:
        pid, base = server.pid, server.base_dir
        assert server.running and base is not None and base.exists()
        assert loaded_config(server)["worker"]["cleanup-interval"] == "1s"  # the server's own default is 1h
        assert not list(base.glob("*.toml"))  # configured by environment variables alone
        assert urllib.request.urlopen(server.ingress_url + "/restate/health", timeout=5).status == 200
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not base.exists()


def test_python_m_playground_serve_registers_and_serves(deployed, tmp_path: Path):
    (tmp_path / "cli_app.py").write_text(textwrap.dedent("""
        import restate
        hello = restate.Service("CliHello")

        @hello.handler()
        async def hi(ctx: restate.Context, name: str) -> str:
            return "hi " + name

        services = [hello]
    """))
    proc = subprocess.Popen([sys.executable, "-m", "playground", "serve", "cli_app:services",
                             "--admin-url", deployed.admin_url, "--port", "0"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("registered") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())
        assert lines[0].startswith("serving CliHello on http://127.0.0.1:")
        assert deployed.call("CliHello", "hi", "Bo") == "hi Bo"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(20) == 0


def test_no_binary_skips_outside_ci_and_fails_under_ci(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PLAYGROUND_RESTATE_SERVER", str(tmp_path / "missing"))
    with pytest.raises(real.RestateServerUnavailable):
        real.find_server_binary()
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no real Restate server"):
        start_real_server()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        start_real_server()


def test_no_npm_is_reported_as_unavailable(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PLAYGROUND_RESTATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # neither npm nor restate-server on it
    monkeypatch.delenv("PLAYGROUND_RESTATE_SERVER", raising=False)
    with pytest.raises(real.RestateServerUnavailable, match="npm is not installed"):
        real.find_server_binary()


def test_compare_real_benchmark_runs(restate_server):
    """benchmarks/compare_real.py with tiny numbers (no timing assertions); restate_server: skip/fail policy."""
    import importlib.util
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_real.py"
    spec = importlib.util.spec_from_file_location("playground_compare_real", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        result = module.measure(n=3, sends=5, real_delay=timedelta(milliseconds=100), warmup=2)
        assert "| cold start to first result |" in module.table(result)
        assert module.verdict(result).startswith("per call, real / playground (target >= 50x): ingress call ")
    finally:
        sys.modules.pop(spec.name, None)


def _server_cli() -> tuple[subprocess.Popen[str], list[int]]:
    """`python -m playground server` on free ports (ingress, admin, node)."""
    ports = [real.free_port() for _ in range(3)]
    proc = subprocess.Popen([sys.executable, "-m", "playground", "server", "--ingress-port", str(ports[0]),
                             "--admin-port", str(ports[1]), "--node-port", str(ports[2])],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, ports


def _pid_in(ready_line: str) -> int:
    return int(ready_line.split("pid ")[1].split(")")[0])


def test_python_m_playground_server_runs_until_sigterm(restate_server):
    proc, ports = _server_cli()
    try:
        line = proc.stdout.readline()
        assert f"ingress http://127.0.0.1:{ports[0]}, admin http://127.0.0.1:{ports[1]}" in line, line
        server_pid = _pid_in(line)
        assert urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/restate/health", timeout=5).status == 200
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)


def test_sigterm_right_after_ready_still_stops_the_server_cleanly(restate_server):
    """The handlers are installed before the server starts: a SIGTERM the moment "ready" is printed used to
    hit the default handler (exit -15) in the gap before they were installed."""
    proc, _ports = _server_cli()
    try:
        line = proc.stdout.readline()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stdout.read()
    server_pid = _pid_in(line)
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
