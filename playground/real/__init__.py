"""The real engine beside the playground: a Restate server from npm, and your services served to it.

    from playground.real import RestateServer, serve

    with RestateServer() as server, serve(greeter, counter) as app:   # no Docker: the npm binary, 127.0.0.1
        server.register(app.url)
        server.call("Greeter", "greet", "world")                       # -> 'Hello world'

Three parts: `install` finds the `restate-server` binary (or installs the npm package
`@restatedev/restate-server` into a cache directory on first use, and the `restate` CLI likewise);
`server` runs it (`RestateServer`: free ports of 127.0.0.1, configured through its `RESTATE_*` environment
variables, a temporary base directory, stopped by pid at the end of the `with` block, on `stop()` or at
exit); `serve` serves the same service objects the embedded `pg.Runtime` runs, with hypercorn (the `real`
extra). `client` talks to the ingress and admin API with the standard library only (urllib).
See docs/real-server.md.
"""

from __future__ import annotations

from .client import IngressError, Response, free_port, http_request, ingress_path, ingress_request, query, register
from .install import (
    CLI_PACKAGE,
    NPM_PACKAGE,
    SERVER_VERSION,
    RestateServerUnavailable,
    find_cli_binary,
    find_server_binary,
    install_server,
)
from .serve import ServedApp, serve
from .server import RestateServer, config_env, dies_with_us

__all__ = [
    "CLI_PACKAGE",
    "NPM_PACKAGE",
    "SERVER_VERSION",
    "IngressError",
    "Response",
    "RestateServer",
    "RestateServerUnavailable",
    "ServedApp",
    "config_env",
    "dies_with_us",
    "find_cli_binary",
    "find_server_binary",
    "free_port",
    "http_request",
    "ingress_path",
    "ingress_request",
    "install_server",
    "query",
    "register",
    "serve",
]
