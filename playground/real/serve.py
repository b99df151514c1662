"""Serving your services to a real Restate server: the same service objects `pg.Runtime` runs, served by
hypercorn over HTTP/2 without TLS (as Restate talks to deployments) on a background thread. Needs the
`real` extra: pip install 'restate-playground[real]'."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import logging
import socket
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from .client import IngressError, http_request, register

__all__ = ["HYPERCORN_MISSING", "ServedApp", "require_hypercorn", "serve"]

HYPERCORN_MISSING = ("serving services to a real Restate server needs hypercorn: "
                     "pip install 'restate-playground[real]'")

_serving: weakref.WeakSet[ServedApp] = weakref.WeakSet()


def require_hypercorn(missing: str = HYPERCORN_MISSING) -> None:
    """Raise ImportError naming the extra to install when hypercorn is not there (before anything listens)."""
    if importlib.util.find_spec("hypercorn") is None:
        raise ImportError(missing, name="hypercorn")


@atexit.register
def _stop_serving() -> None:
    for app in list(_serving):
        with contextlib.suppress(Exception):
            app.stop()


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
        require_hypercorn()
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

    def start(self, timeout: float = 30.0) -> ServedApp:
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
                    http_request("GET", self.url + "/health", timeout=2)
                    break
                except (OSError, IngressError):
                    pass
            time.sleep(0.02)
        else:
            raise RuntimeError(f"the services did not come up on {self.url} within {timeout:.0f} s")
        _serving.add(self)
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
            loop.run_until_complete(hypercorn_serve(self._app_with_cutoff, config,
                                                    shutdown_trigger=self._stop_event.wait))
        except BaseException as exc:
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
        _serving.discard(self)

    def __enter__(self) -> ServedApp:
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
