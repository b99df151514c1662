"""The real engine beside the playground: a Restate server from npm, and your services served to it.

    from playground.real import RestateServer, serve

    with RestateServer() as server, serve(greeter, counter) as app:   # no Docker: the npm binary, 127.0.0.1
        server.register(app.url)
        server.call("Greeter", "greet", "world")                       # -> 'Hello world'

`RestateServer` finds the `restate-server` binary (or installs the npm package `@restatedev/restate-server`
into a cache directory on first use), starts it on free ports of 127.0.0.1 with a generated config and a
temporary base directory, waits until the admin API and the ingress answer, and stops it by pid when
the `with` block ends, when `stop()` is called, or when the interpreter exits. `serve(*services)` serves
the same service objects the embedded `pg.Runtime` runs, with hypercorn (HTTP/2 without TLS, as Restate
talks to deployments) on a background thread. `register(admin_url, uri)` registers a deployment.

Only the standard library talks to the servers (urllib), so nothing here needs an HTTP client package.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import copy
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["RestateServer", "ServedApp", "RestateServerUnavailable", "IngressError", "serve", "register",
           "find_server_binary", "install_server", "find_cli_binary", "SERVER_VERSION"]

# The server version this project measured its reference semantics against (see the README); override with
# PLAYGROUND_RESTATE_VERSION (e.g. "latest").
SERVER_VERSION = "1.7.12"
NPM_PACKAGE = "@restatedev/restate-server"
CLI_PACKAGE = "@restatedev/restate"  # the `restate` CLI, same version as the server
_BINARIES = {NPM_PACKAGE: "restate-server", CLI_PACKAGE: "restate"}
_PLATFORMS = {("Linux", "x86_64"): "linux-x64", ("Linux", "aarch64"): "linux-arm64",
              ("Darwin", "x86_64"): "darwin-x64", ("Darwin", "arm64"): "darwin-arm64"}


class RestateServerUnavailable(RuntimeError):
    """The restate-server binary is not installed and could not be installed (no npm, no registry access...)."""


class IngressError(Exception):
    """A non-2xx answer from Restate's ingress or admin API: `status`, and Restate's `code`/`message` from the body."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.code, self.message, self.metadata = status, body.decode(errors="replace"), {}
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            doc = json.loads(body)
            self.code = int(doc.get("code", status))
            self.message = str(doc.get("message", ""))
            self.metadata = dict(doc.get("metadata") or {})
        super().__init__(f"[{self.code}] {self.message}")


# ------------------------------------------------------------------------------------------ HTTP (stdlib only)
@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 60.0) -> _Response:
    """One request; a non-2xx answer raises IngressError (connection failures raise OSError/URLError)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return _Response(resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as exc:
        data = exc.read()
        raise IngressError(exc.code, data, {k.lower(): v for k, v in (exc.headers or {}).items()}) from None


def _post_json(url: str, doc: Any, timeout: float = 60.0) -> Any:
    return _http("POST", url, json.dumps(doc).encode(),
                 {"content-type": "application/json", "accept": "application/json"}, timeout).json()


# ------------------------------------------------------------------------------------------ finding the binary
def _cache_dir() -> Path:
    env = os.environ.get("PLAYGROUND_RESTATE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "restate-playground"


def _platform_package(package: str = NPM_PACKAGE) -> str:
    key = (platform.system(), platform.machine())
    if key not in _PLATFORMS:
        raise RestateServerUnavailable(f"npm has no {package} build for {key[0]} {key[1]}; "
                                       "set PLAYGROUND_RESTATE_SERVER (or PLAYGROUND_RESTATE_CLI) to a binary")
    return f"{package}-{_PLATFORMS[key]}"


def _wanted_version() -> str:
    return os.environ.get("PLAYGROUND_RESTATE_VERSION", SERVER_VERSION)


def _cached_binary(prefix: Path, version: str, package: str = NPM_PACKAGE) -> Path | None:
    pkg_dir = prefix / "node_modules" / _platform_package(package)
    binary = pkg_dir / "bin" / _BINARIES[package]
    if not binary.is_file():
        return None
    if version != "latest":
        try:
            installed = json.loads((pkg_dir / "package.json").read_text()).get("version")
        except (OSError, ValueError):
            return None
        if installed != version:
            return None
    return binary


def install_server(version: str | None = None, prefix: Path | None = None, timeout: float = 600.0,
                   package: str = NPM_PACKAGE) -> Path:
    """`npm install --prefix <cache>/npm @restatedev/restate-server@<version>` and return the binary's path.

    Install scripts are not run (the binary ships inside the platform package; the only script is a
    download counter). Concurrent installs from several processes are serialised with a file lock."""
    version = version or _wanted_version()
    prefix = prefix or _cache_dir() / "npm"
    npm = shutil.which("npm")
    if npm is None:
        raise RestateServerUnavailable("npm is not installed, so the restate-server npm package cannot be "
                                       "installed (install Node.js and npm, or set PLAYGROUND_RESTATE_SERVER)")
    prefix.mkdir(parents=True, exist_ok=True)
    import fcntl
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _cached_binary(prefix, version, package)
        if found is not None:
            return found
        cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
               "--loglevel=error", f"{package}@{version}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RestateServerUnavailable(f"`{' '.join(cmd)}` did not finish in {timeout:.0f} s") from None
        found = _cached_binary(prefix, version, package)
        if proc.returncode != 0 or found is None:
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise RestateServerUnavailable(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
        return found


def find_server_binary(install: bool = True) -> Path:
    """The restate-server to run: $PLAYGROUND_RESTATE_SERVER, else the cached npm install of the pinned
    version, else `restate-server` on PATH, else (with install=True) a fresh npm install into the cache."""
    explicit = os.environ.get("PLAYGROUND_RESTATE_SERVER")
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RestateServerUnavailable(f"PLAYGROUND_RESTATE_SERVER={explicit} is not an executable file")
        return path
    cached = _cached_binary(_cache_dir() / "npm", _wanted_version())
    if cached is not None:
        return cached
    on_path = shutil.which("restate-server")
    if on_path:
        return Path(on_path)
    if not install:
        raise RestateServerUnavailable("restate-server is not installed (python -m playground install-server)")
    return install_server()


def find_cli_binary(install: bool = True) -> Path:
    """The `restate` CLI: $PLAYGROUND_RESTATE_CLI, else the cached npm install of `@restatedev/restate` at the
    pinned version, else `restate` on PATH, else (with install=True) an npm install into the same cache."""
    explicit = os.environ.get("PLAYGROUND_RESTATE_CLI")
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RestateServerUnavailable(f"PLAYGROUND_RESTATE_CLI={explicit} is not an executable file")
        return path
    cached = _cached_binary(_cache_dir() / "npm", _wanted_version(), CLI_PACKAGE)
    if cached is not None:
        return cached
    on_path = shutil.which("restate")
    if on_path:
        return Path(on_path)
    if not install:
        raise RestateServerUnavailable("the restate CLI is not installed (python -m playground install-cli)")
    return install_server(package=CLI_PACKAGE)


# ------------------------------------------------------------------------------------------ the server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, timedelta):
        return json.dumps(f"{int(v.total_seconds() * 1000)}ms")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def _toml(doc: dict[str, Any]) -> str:
    """A small TOML writer for the server config: scalars first, then [tables] (nested as [a.b])."""
    lines: list[str] = []

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {_toml_value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    return "\n".join(lines) + "\n"


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
    return into


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; atexit still stops the server
        pass


def _dies_with_us() -> Callable[[], None] | None:
    """The preexec_fn for a child that should get SIGTERM when this process dies. Linux sends it when the
    *thread* that forked exits, so only a child forked by the main thread can use it."""
    if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
        return _set_pdeathsig
    return None


_running: "weakref.WeakSet[RestateServer]" = weakref.WeakSet()
_served: "weakref.WeakSet[ServedApp]" = weakref.WeakSet()


@atexit.register
def _stop_everything() -> None:
    for app in list(_served):
        with contextlib.suppress(Exception):
            app.stop()
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()


class RestateServer:
    """A real Restate server (the npm `restate-server` binary) on 127.0.0.1, for as long as you need it.

    Ports default to free ones (pass `ingress_port=8080, admin_port=9070` for Restate's usual ones). `config`
    is merged into the generated TOML (e.g. `{"worker": {"cleanup-interval": "1s"}}`). The base directory is
    temporary and removed on stop unless you pass `base_dir`. Use it as a context manager, or call `start()`
    and `stop()`; a server still running when the interpreter exits is stopped then.
    """

    def __init__(self, *, binary: str | os.PathLike[str] | None = None, ingress_port: int | None = None,
                 admin_port: int | None = None, node_port: int | None = None, partitions: int = 2,
                 config: dict[str, Any] | None = None, base_dir: str | os.PathLike[str] | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 60.0) -> None:
        self._binary = Path(binary) if binary else None
        self.ingress_port = ingress_port
        self.admin_port = admin_port
        self.node_port = node_port
        self.partitions = partitions
        self.extra_config = config or {}
        self._base_dir_arg = Path(base_dir) if base_dir else None
        self._env = env or {}
        self.startup_timeout = startup_timeout
        self.base_dir: Path | None = None
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._tmp: str | None = None
        self._log_file: Any = None

    # ---------------------------------------------------------------- lifecycle
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config_toml(self) -> str:
        doc: dict[str, Any] = {
            "node-name": "playground",
            "bind-ip": "127.0.0.1",
            "bind-port": self.node_port,
            "listen-mode": "tcp",             # no unix sockets under the base dir
            "disable-telemetry": True,
            "default-num-partitions": self.partitions,
            "log-filter": "warn,restate=info",
            "log-disable-ansi-codes": True,
            "admin": {"bind-port": self.admin_port, "disable-web-ui": True},
            "ingress": {"bind-port": self.ingress_port},
        }
        return _toml(_merge(doc, copy.deepcopy(self.extra_config)))

    def start(self) -> "RestateServer":
        if self.running:
            return self
        binary = self._binary or find_server_binary()
        fixed = (self.ingress_port, self.admin_port, self.node_port)
        for attempt in range(3):  # free ports can be taken between choosing and binding: try fresh ones
            self.ingress_port = fixed[0] or _free_port()
            self.admin_port = fixed[1] or _free_port()
            self.node_port = fixed[2] or _free_port()
            try:
                self._launch(binary)
                return self
            except _PortInUse:
                self._cleanup()
                if all(fixed) or attempt == 2:
                    raise RuntimeError(f"restate-server could not bind its ports ({self.ingress_port}, "
                                       f"{self.admin_port}, {self.node_port}): already in use") from None
        return self

    def restart(self, hard: bool = False, timeout: float = 15.0) -> None:
        """Stop the server (SIGKILL if `hard`, else SIGTERM) and start it again on the same ports and data:
        what it had stored (invocations, journals, state, registrations) survives, as in production."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
            proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._launch(self._binary or find_server_binary(), keep_base_dir=True)

    def _launch(self, binary: Path, keep_base_dir: bool = False) -> None:
        if self._base_dir_arg is not None:
            self.base_dir = self._base_dir_arg
            self.base_dir.mkdir(parents=True, exist_ok=True)
        elif not (keep_base_dir and self._tmp is not None):  # a restart keeps its temporary directory
            self._tmp = tempfile.mkdtemp(prefix="restate-playground-")
            self.base_dir = Path(self._tmp)
        config_path = self.base_dir / "restate.toml"
        config_path.write_text(self.config_toml())
        self.log_path = self.base_dir / "server.log"
        self._log_file = open(self.log_path, "ab")
        # RESTATE_* variables override the config file: keep the caller's out, except the ones passed here
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        env.update(self._env)
        t0 = time.monotonic()
        self.process = subprocess.Popen(
            [str(binary), "--config-file", str(config_path), "--base-dir", str(self.base_dir / "data"),
             "--no-logo"],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, env=env,
            cwd=str(self.base_dir), start_new_session=True,
            preexec_fn=_dies_with_us())
        _running.add(self)
        try:
            self._wait_healthy(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _wait_healthy(self, t0: float) -> None:
        deadline = t0 + self.startup_timeout
        admin_ok = False
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                log = self.log_tail()
                if "Address in use" in log or "address already in use" in log.lower():
                    raise _PortInUse()
                raise RuntimeError(f"restate-server exited with {self.process.returncode if self.process else '?'} "
                                   f"while starting; log {self.log_path}:\n{log}")
            try:
                if not admin_ok:
                    _http("GET", self.admin_url + "/health", timeout=2)
                    admin_ok = True
                _http("GET", self.ingress_url + "/restate/health", timeout=2)
                return
            except (OSError, IngressError):
                time.sleep(0.03)
        raise RuntimeError(f"restate-server did not become healthy within {self.startup_timeout:.0f} s; "
                           f"log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by pid, SIGKILL if it has not exited after `timeout` seconds; then remove the temp dir."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        _running.discard(self)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
            return
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "RestateServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}, ingress {self.ingress_url}, admin {self.admin_url}" if self.running else "stopped"
        return f"<RestateServer {state}>"

    # ---------------------------------------------------------------- admin API
    def register(self, uri: str, force: bool = True) -> dict[str, Any]:
        """Register the deployment at `uri` (e.g. `serve(...).url`); returns the admin API's answer."""
        return register(self.admin_url, uri, force=force)

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a SQL query over the server's introspection tables (sys_invocation, state, sys_journal...)."""
        return query(self.admin_url, sql)

    # ---------------------------------------------------------------- ingress
    def call(self, service: str, handler: str, arg: Any = None, key: str | None = None,
             idempotency_key: str | None = None, headers: dict[str, str] | None = None,
             timeout: float = 60.0) -> Any:
        """Call a handler through the ingress with a JSON argument (None: an empty body) and decode the answer."""
        resp = self.request(service, handler, None if arg is None else json.dumps(arg).encode(), key=key,
                            idempotency_key=idempotency_key, headers=headers, timeout=timeout)
        return resp.json()

    def send(self, service: str, handler: str, arg: Any = None, key: str | None = None,
             delay: timedelta | None = None, idempotency_key: str | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        """A one-way send through the ingress; returns `{"invocationId": ..., "status": "Accepted", ...}`."""
        resp = self.request(service, handler, None if arg is None else json.dumps(arg).encode(), key=key,
                            send=True, delay=delay, idempotency_key=idempotency_key, headers=headers)
        return resp.json()

    def request(self, service: str, handler: str, body: bytes | None, key: str | None = None, send: bool = False,
                delay: timedelta | None = None, idempotency_key: str | None = None,
                headers: dict[str, str] | None = None, content_type: str = "application/json",
                timeout: float = 60.0) -> _Response:
        return ingress_request(self.ingress_url, service, handler, body, key=key, send=send, delay=delay,
                               idempotency_key=idempotency_key, headers=headers, content_type=content_type,
                               timeout=timeout)


class _PortInUse(Exception):
    pass


def ingress_path(service: str, handler: str, key: str | None = None) -> str:
    parts = [service] + ([key] if key is not None else []) + [handler]
    return "/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


def ingress_request(ingress_url: str, service: str, handler: str, body: bytes | None, key: str | None = None,
                    send: bool = False, delay: timedelta | None = None, idempotency_key: str | None = None,
                    headers: dict[str, str] | None = None, content_type: str = "application/json",
                    timeout: float = 60.0) -> _Response:
    url = ingress_url + ingress_path(service, handler, key) + ("/send" if send else "")
    if send and delay:
        url += f"?delay={int(delay.total_seconds() * 1000)}ms"
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("content-type", content_type)
    if idempotency_key is not None:
        hdrs["idempotency-key"] = idempotency_key
    return _http("POST", url, body, hdrs, timeout)


def register(admin_url: str, uri: str, force: bool = True) -> dict[str, Any]:
    """POST {admin_url}/deployments {"uri": uri, "force": force}: Restate discovers the services at `uri`."""
    return _post_json(admin_url.rstrip("/") + "/deployments", {"uri": uri, "force": force})


def query(admin_url: str, sql: str) -> list[dict[str, Any]]:
    """POST {admin_url}/query with `accept: application/json`: the rows of a SQL query."""
    return (_post_json(admin_url.rstrip("/") + "/query", {"query": sql}) or {}).get("rows", [])


# ------------------------------------------------------------------------------------------ serving services
class ServedApp:
    """Service objects served over HTTP/2 (h2c) by hypercorn on a background thread; `url` is what to register."""

    def __init__(self, services: Iterable[Any], host: str = "127.0.0.1", port: int | None = None) -> None:
        import restate
        self.services = list(services)
        if not self.services:
            raise ValueError("serve() needs at least one restate.Service, VirtualObject or Workflow")
        for s in self.services:
            if not isinstance(s, (restate.Service, restate.VirtualObject, restate.Workflow)):
                raise TypeError(f"serve() takes restate.Service, VirtualObject or Workflow objects, not {s!r}")
        self.app = restate.app(services=self.services)
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port or 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._cut: asyncio.Event | None = None  # set by stop() when requests in flight are cut off
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "ServedApp":
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"restate-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # ready when the SDK app answers its health check
            if self._error is not None:
                raise RuntimeError(f"serving on {self.url} failed: {self._error!r}") from self._error
            if self._ready.is_set():
                try:
                    _http("GET", self.url + "/health", timeout=2)
                    break
                except (OSError, IngressError):
                    pass
            time.sleep(0.02)
        else:
            raise RuntimeError(f"the services did not come up on {self.url} within {timeout:.0f} s")
        _served.add(self)
        return self

    async def _app_with_cutoff(self, scope: Any, receive: Any, send: Any) -> None:
        """The SDK's app, with a receive that reports a disconnect once stop() cuts requests off: the SDK
        then ends the request itself and hypercorn closes the stream cleanly (cancelling the request task
        instead tears down hypercorn's task group mid-send)."""
        cut = self._cut
        assert cut is not None

        async def receive_until_cut() -> Any:
            if cut.is_set():
                return {"type": "http.disconnect"}
            got, stop = asyncio.ensure_future(receive()), asyncio.ensure_future(cut.wait())
            try:
                await asyncio.wait((got, stop), return_when=asyncio.FIRST_COMPLETED)
                if got.done():
                    return got.result()
                return {"type": "http.disconnect"}
            finally:  # also when the SDK cancels its reader at the end of a request
                stop.cancel()
                got.cancel()

        await self.app(scope, receive_until_cut, send)

    def _run(self) -> None:
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config
        import logging

        config = Config()
        config.bind = [f"fd://{self._sock.fileno()}"]
        config.accesslog = None
        errorlog = logging.getLogger("playground.real.hypercorn")
        if errorlog.level == logging.NOTSET:  # hypercorn warns that the SDK app has no lifespan: not news
            errorlog.setLevel(logging.ERROR)
        config.errorlog = errorlog
        config.graceful_timeout = 5.0  # longer than stop()'s grace: stop() cuts requests off first
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            asyncio.set_event_loop(loop)
            self._stop_event = asyncio.Event()
            self._cut = asyncio.Event()
            self._ready.set()
            loop.run_until_complete(hypercorn_serve(self._app_with_cutoff, config, shutdown_trigger=self._stop_event.wait))
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def register(self, admin_url: str, force: bool = True) -> dict[str, Any]:
        return register(admin_url, self.url, force=force)

    def stop(self, timeout: float = 10.0, grace: float = 1.0) -> None:
        """Stop accepting, give requests in flight `grace` seconds to finish, then cut them off (an invocation
        waiting on a long sleep would otherwise hold its stream open and the shutdown with it); the Restate
        server retries what was cut off on the next deployment that serves it."""
        thread, self._thread = self._thread, None
        loop = self._loop
        if thread is not None and loop is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(self._stop_event.set)
            thread.join(grace)
            if thread.is_alive() and self._cut is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._cut.set)
            thread.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()
        _served.discard(self)

    def __enter__(self) -> "ServedApp":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.services)
        return f"<ServedApp {names} on {self.url}>"


def serve(*services: Any, port: int | None = None, host: str = "127.0.0.1") -> ServedApp:
    """Serve these services (the same objects `pg.Runtime` runs) on `host:port` (a free port by default)
    in a background thread, and return the running `ServedApp` (`.url`, `.stop()`, a context manager)."""
    return ServedApp(services, host=host, port=port).start()
