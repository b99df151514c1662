"""pytest fixtures for testing Restate services, on the embedded runtime and on a real Restate server.

Installed with the package (entry point `pytest11`), so a project that depends on restate-playground gets:

- `restate_runtime`: a fresh embedded `pg.Runtime()` per test, closed after it; call `.register(service, ...)`
  on it.
- `restate_server`: one real Restate server for the whole test session (the npm `restate-server` binary,
  installed into a cache on first use, on free ports of 127.0.0.1). It yields a `RealRestate` with
  `ingress_url`, `admin_url`, `register(*services)` (serves the services with hypercorn and registers them;
  returns the deployment), and `call`/`send`/`query` helpers. When the binary cannot be found or installed
  the tests that use it are skipped, with the reason, unless the `CI` environment variable is set: then
  they fail, so a CI machine without the server does not pass by skipping. `PLAYGROUND_REAL_SERVER=skip`
  skips them on purpose.

    def test_greet(restate_server):
        restate_server.register(greeter)
        assert restate_server.call("Greeter", "greet", "Ann") == "Hello Ann"
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


class RealRestate:
    """What the `restate_server` fixture yields: a running server plus the apps registered with it."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.apps: list[Any] = []

    @property
    def ingress_url(self) -> str:
        return self.server.ingress_url

    @property
    def admin_url(self) -> str:
        return self.server.admin_url

    def register(self, *services: Any, port: int | None = None) -> Any:
        """Serve these services (hypercorn, h2c, a free port) and register them; returns the `ServedApp`
        (its `deployment` attribute holds the admin API's answer). They stay served for the session."""
        from .real import serve
        app = serve(*services, port=port)
        self.apps.append(app)
        # ServedApp does not declare it: the fixture adds what the admin API answered
        app.deployment = self.server.register(app.url)  # type: ignore[attr-defined]
        return app

    def call(self, *args: Any, **kwargs: Any) -> Any:
        return self.server.call(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        return self.server.send(*args, **kwargs)

    def query(self, sql: str) -> list[dict[str, Any]]:
        return self.server.query(sql)

    def close(self) -> None:
        for app in self.apps:
            app.stop()
        self.apps.clear()
        self.server.stop()


def start_real_server(**kwargs: Any) -> RealRestate:
    """Start a real server for tests, or skip (fail under CI) when it cannot be had."""
    from .real import RestateServer, RestateServerUnavailable
    if os.environ.get("PLAYGROUND_REAL_SERVER", "").lower() == "skip":
        pytest.skip("PLAYGROUND_REAL_SERVER=skip")
    try:
        server = RestateServer(**kwargs).start()
    except RestateServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the real Restate server is required under CI but is unavailable: {exc}", pytrace=False)
        pytest.skip(f"no real Restate server: {exc}")
    return RealRestate(server)


@pytest.fixture
def restate_runtime() -> Iterator[Any]:
    """A fresh embedded runtime (`playground.Runtime()`), virtual clock; register your services on it.
    It is closed after the test (`rt.close()`): attempts still in flight end and a store file is released."""
    from . import Runtime
    runtime = Runtime()
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture(scope="session")
def restate_server() -> Iterator[RealRestate]:
    """A real Restate server for the session (see the module docstring)."""
    real = start_real_server()
    try:
        yield real
    finally:
        real.close()
