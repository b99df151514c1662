"""Running a real Restate server (the npm `restate-server` binary) on 127.0.0.1, configured through its
`RESTATE_*` environment variables (nested keys joined by `__`, dashes as underscores: `{"worker":
{"cleanup-interval": "1s"}}` is `RESTATE_WORKER__CLEANUP_INTERVAL=1s`), so no config file is written."""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from .client import IngressError, Response, free_port, http_request, ingress_request, query, register
from .install import find_server_binary

__all__ = ["RestateServer", "config_env", "dies_with_us"]


def _env_value(path: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds() * 1000)}ms"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json.dumps(_env_value(path, v)) for v in value) + "]"
    raise TypeError(f"config {path!r} must be a str, number, bool, timedelta, list or dict, not "
                    f"{type(value).__name__}")


def config_env(doc: dict[str, Any], prefix: str = "RESTATE_", path: str = "") -> dict[str, str]:
    """A restate-server configuration (as in its TOML file) as the environment variables it reads; a None
    value leaves the server's default (a port not chosen yet)."""
    env: dict[str, str] = {}
    for key, value in doc.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"config keys must be non-empty strings, not {key!r}")
        where, name = f"{path}.{key}" if path else key, prefix + key.upper().replace("-", "_")
        if value is None:
            continue
        if isinstance(value, dict):
            env.update(config_env(value, name + "__", where))
        else:
            env[name] = _env_value(where, value)
    return env


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
    except Exception:
        pass


def dies_with_us() -> Callable[[], None] | None:
    """The preexec_fn for a child that should get SIGTERM when this process dies. Linux sends it when the
    *thread* that forked exits, so only a child forked by the main thread can use it."""
    if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
        return _set_pdeathsig
    return None


_running: weakref.WeakSet[RestateServer] = weakref.WeakSet()


@atexit.register
def _stop_servers() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()


class _PortInUse(Exception):
    pass


class RestateServer:
    """A real Restate server (the npm `restate-server` binary) on 127.0.0.1, for as long as you need it.

    Ports default to free ones (pass `ingress_port=8080, admin_port=9070` for Restate's usual ones). `config`
    is merged into the generated configuration (e.g. `{"worker": {"cleanup-interval": "1s"}}`) and `env`
    (`RESTATE_*` variables) overrides it. The base directory is temporary and removed on stop unless you pass
    `base_dir`. Use it as a context manager, or call `start()` and `stop()`; a server still running when the
    interpreter exits is stopped then.
    """

    def __init__(self, *, binary: str | os.PathLike[str] | None = None, ingress_port: int | None = None,
                 admin_port: int | None = None, node_port: int | None = None, partitions: int = 2,
                 config: dict[str, Any] | None = None, base_dir: str | os.PathLike[str] | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 60.0) -> None:
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a dict such as {{'worker': {{'cleanup-interval': '1s'}}}}, "
                            f"not {type(config).__name__}")
        config_env(config or {})  # a value the server cannot be given raises here, before anything starts
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
        self._log_file: IO[bytes] | None = None

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

    def config(self) -> dict[str, Any]:
        """The configuration the server gets (as its TOML file would hold it): loopback, TCP only, no
        telemetry, no web UI, these ports and partitions, then `config=` merged in."""
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
        return _merge(doc, copy.deepcopy(self.extra_config))

    def environment(self) -> dict[str, str]:
        """The process environment it runs with: ours without any `RESTATE_*` variable (they would override
        the configuration), then `config()` as `RESTATE_*` variables, then `env=`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        env.update(config_env(self.config()))
        env.update(self._env)
        return env

    def start(self) -> RestateServer:
        if self.running:
            return self
        binary = self._binary or find_server_binary()
        fixed = (self.ingress_port, self.admin_port, self.node_port)
        for attempt in range(3):  # free ports can be taken between choosing and binding: try fresh ones
            self.ingress_port = fixed[0] or free_port()
            self.admin_port = fixed[1] or free_port()
            self.node_port = fixed[2] or free_port()
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
        assert self.base_dir is not None
        self.log_path = self.base_dir / "server.log"
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - the server writes to it until stop() closes it
        t0 = time.monotonic()
        self.process = subprocess.Popen(
            [str(binary), "--base-dir", str(self.base_dir / "data"), "--no-logo"],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, env=self.environment(),
            cwd=str(self.base_dir), start_new_session=True, preexec_fn=dies_with_us())
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
                    http_request("GET", self.admin_url + "/health", timeout=2)
                    admin_ok = True
                http_request("GET", self.ingress_url + "/restate/health", timeout=2)
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

    def __enter__(self) -> RestateServer:
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
        answer: dict[str, Any] = resp.json()
        return answer

    def request(self, service: str, handler: str, body: bytes | None, key: str | None = None, send: bool = False,
                delay: timedelta | None = None, idempotency_key: str | None = None,
                headers: dict[str, str] | None = None, content_type: str = "application/json",
                timeout: float = 60.0) -> Response:
        return ingress_request(self.ingress_url, service, handler, body, key=key, send=send, delay=delay,
                               idempotency_key=idempotency_key, headers=headers, content_type=content_type,
                               timeout=timeout)
