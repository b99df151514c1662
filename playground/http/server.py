"""The door: Restate's ingress and admin API for one runtime, served by hypercorn on the running loop.

One hypercorn server listens on two sockets (ingress, admin); requests are told apart by the port they
arrived on. `close()` stops accepting, answers requests still waiting with 503, and ends every task the
door started.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
from typing import TYPE_CHECKING, Any

from .admin import AdminApp
from .asgi import (
    DEFAULT_MAX_BODY,
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    admin_error,
    ingress_error,
    lifespan,
    read_request,
    write,
)
from .ingress import IngressApp

if TYPE_CHECKING:
    from ..runtime.core import Engine as Runtime


HYPERCORN_MISSING = "rt.serve_http() needs hypercorn: pip install 'restate-playground[http]'"


class DoorClosing(Exception):
    """The door closed while a request was waiting."""


class Door:
    """Restate's ingress (`ingress_url`) and admin API (`admin_url`) over a runtime, on 127.0.0.1 by default.

    Get one with `door = await rt.serve_http()` (or `async with rt.serve_http() as door:`); `await
    door.close()` ends it."""

    def __init__(self, rt: Runtime, host: str = "127.0.0.1", ingress_port: int = 0, admin_port: int = 0,
                 max_body: int = DEFAULT_MAX_BODY) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be an address to listen on, e.g. '127.0.0.1', not {host!r}")
        if not isinstance(max_body, int) or max_body <= 0:
            raise ValueError(f"max_body must be a positive number of bytes, not {max_body!r}")
        for name, port in (("ingress_port", ingress_port), ("admin_port", admin_port)):
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"{name} must be a port number 0..65535 (0: a free one), not {port!r}")
        if importlib.util.find_spec("hypercorn") is None:  # an extra: say which, before anything listens
            raise ImportError(HYPERCORN_MISSING, name="hypercorn")
        self.rt = rt
        self.host = host
        self.max_body = max_body
        self._wanted = (ingress_port, admin_port)
        self._closing = asyncio.Event()
        self._serve_task: asyncio.Task[None] | None = None
        self._waits: set[asyncio.Task[Any]] = set()
        self.ingress_port = self.admin_port = 0
        self.ingress = IngressApp(rt, self._guard)
        self.admin = AdminApp(rt, self)

    @property
    def ingress_url(self) -> str:
        return f"http://{self._url_host}:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self._url_host}:{self.admin_port}"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Door:
        """Bind both ports (before returning, so the URLs work at once) and serve on the running loop."""
        from hypercorn.asyncio import serve
        from hypercorn.config import Config
        socks = [self._bind(port) for port in self._wanted]
        self.ingress_port, self.admin_port = (s.getsockname()[1] for s in socks)
        config = Config()
        config.bind = [f"fd://{s.detach()}" for s in socks]  # hypercorn owns (and closes) them from here
        config.graceful_timeout = 1.0
        config.accesslog = None
        config.include_server_header = False
        config.errorlog = logging.getLogger("playground.http")
        self._serve_task = asyncio.get_running_loop().create_task(
            serve(self.asgi, config, shutdown_trigger=self._closing.wait))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        return self

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {self.host}:{port}: {exc.strerror}") from None
        return sock

    async def close(self) -> None:
        """Stop serving: requests still waiting answer 503, and every task the door started has ended."""
        if self._serve_task is None:
            return
        self._closing.set()
        for task in list(self._waits):
            task.cancel()
        task, self._serve_task = self._serve_task, None
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    async def restate(self, *args: str, timeout: float = 60.0) -> Any:
        """Run the real `restate` CLI against this door's admin API, e.g. `await door.restate("invocations
        list")` or `await door.restate("invocations cancel", inv_id, "--yes")`; shows its output. Without the
        CLI installed it says how to get it instead of failing. (A `!restate` shell escape would block the
        event loop this door serves on: see playground/http/cli.py.)"""
        from . import cli
        return await cli.run(self.admin_url, *args, timeout=timeout)

    async def sh(self, command: str, timeout: float = 60.0) -> Any:
        """Run a shell command (e.g. curl) from a cell without blocking the loop the door serves on; the
        command sees $INGRESS_URL and $RESTATE_ADMIN_URL, e.g.
        `await door.sh("curl -s $INGRESS_URL/Greeter/greet --json '\\"Ann\\"'")`."""
        from . import cli
        env = {"INGRESS_URL": self.ingress_url, "RESTATE_ADMIN_URL": self.admin_url}
        return await cli.shell(command, env, timeout=timeout)

    async def __aenter__(self) -> Door:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"ingress {self.ingress_url}, admin {self.admin_url}"
        return f"<playground HTTP door: {state}>"

    # ------------------------------------------------------------------ ASGI
    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        is_admin = (scope.get("server") or ("", 0))[1] == self.admin_port
        await self.dispatch(scope, receive, send, is_admin)

    async def ingress_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ingress alone as an ASGI app (for httpx's ASGITransport in tests, or another server)."""
        await self.dispatch(scope, receive, send, is_admin=False)

    async def admin_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The admin API alone as an ASGI app."""
        await self.dispatch(scope, receive, send, is_admin=True)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send, is_admin: bool) -> None:
        """One request to the admin API or the ingress (also the entry point for in-process tests)."""
        try:
            req = await read_request(scope, receive, self.max_body)
        except BodyTooLarge:
            message = (f"request body too large: the playground's HTTP door takes at most {self.max_body} bytes "
                       f"(rt.serve_http(max_body=...) raises the cap)")
            await write(send, admin_error(413, message) if is_admin else ingress_error(413, message))
            return
        try:
            response = await (self.admin.handle(req) if is_admin else self.ingress.handle(req))
        except DoorClosing:
            message = "the playground's HTTP door is closing"
            response = admin_error(503, message) if is_admin else ingress_error(503, message)
        except Exception as exc:
            logging.getLogger("playground.http").exception("the HTTP door failed on %s %s", req.method, req.path)
            message = f"the playground's HTTP door failed: {exc!r}"
            response = admin_error(500, message) if is_admin else ingress_error(500, message)
        await write(send, response)

    async def _guard(self, aw: Any) -> Any:
        """Await `aw` unless the door closes first (then raise DoorClosing)."""
        if self._closing.is_set():
            aw.close()
            raise DoorClosing()
        task = asyncio.ensure_future(aw)
        self._waits.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            if self._closing.is_set() and task.cancelled():
                raise DoorClosing() from None
            raise
        finally:
            self._waits.discard(task)


class DoorStarter:
    """What `rt.serve_http()` returns: await it for a started door, or use it with `async with`."""

    def __init__(self, door: Door) -> None:
        self._door = door

    def __await__(self) -> Any:
        return self._door.start().__await__()

    async def __aenter__(self) -> Door:
        return await self._door.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self._door.close()
