"""Command line: move the services you wrote in a notebook to a real Restate server.

    python -m playground server                        # install (first time) and run restate-server on 127.0.0.1
    python -m playground serve app:services            # serve app.services with hypercorn and register them
    python -m playground dev app:services              # the embedded runtime behind Restate's ingress (8080)
                                                       # and admin API (9070): curl, clients, the restate CLI
    python -m playground install-server                # only install the server binary; prints its path
    python -m playground install-cli                   # install the `restate` CLI (npm @restatedev/restate)

`serve MODULE:ATTR` imports MODULE (the current directory is on the path) and serves ATTR: one service, or a
list/tuple of them (`serve MODULE` alone serves every service defined at the module's top level). It then
registers the deployment with the admin API at --admin-url (default $RESTATE_ADMIN_URL, else
http://127.0.0.1:9070) unless --no-register, and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from typing import Any


def _services_at(spec: str) -> list[Any]:
    import restate
    kinds = (restate.Service, restate.VirtualObject, restate.Workflow)
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    if not attr:
        found = [v for v in vars(module).values() if isinstance(v, kinds)]
        if not found:
            raise SystemExit(f"no restate.Service, VirtualObject or Workflow at the top level of {module_name}")
        return found
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    items = list(obj) if isinstance(obj, (list, tuple, set)) else [obj]
    bad = [x for x in items if not isinstance(x, kinds)]
    if bad:
        raise SystemExit(f"{spec} must be a service or a list of services; found {bad[0]!r}")
    return items


def _stop_on_signal() -> threading.Event:
    """Install the Ctrl-C/SIGTERM handlers before anything starts, so a signal that arrives while the server
    is starting or just after "ready" is printed still stops it cleanly (exit 0, child stopped)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait(stop: threading.Event) -> None:
    while not stop.wait(0.5):
        pass


def _cmd_serve(args: argparse.Namespace) -> int:
    from .real import IngressError, serve
    stop = _stop_on_signal()
    services = _services_at(args.target)
    app = serve(*services, port=args.port, host=args.host)
    names = ", ".join(s.name for s in services)
    print(f"serving {names} on {app.url}", flush=True)
    try:
        if not args.no_register:
            try:
                answer = app.register(args.admin_url)
            except (OSError, IngressError) as exc:
                print(f"could not register {app.url} with {args.admin_url}: {exc}", file=sys.stderr, flush=True)
                return 1
            print(f"registered with {args.admin_url} as deployment {answer.get('id')}", flush=True)
        _wait(stop)
    finally:
        app.stop()
    return 0


def _cmd_server(args: argparse.Namespace) -> int:
    from .real import RestateServer
    stop = _stop_on_signal()
    server = RestateServer(ingress_port=args.ingress_port, admin_port=args.admin_port, node_port=args.node_port,
                           base_dir=args.base_dir)
    server.start()
    print(f"restate-server (pid {server.pid}) ready: ingress {server.ingress_url}, admin {server.admin_url}",
          flush=True)
    print(f"log: {server.log_path}; Ctrl-C stops it", flush=True)
    try:
        _wait(stop)
    finally:
        server.stop()
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from .real import find_server_binary
    print(find_server_binary(install=True))
    return 0


def _cmd_dev(args: argparse.Namespace) -> int:
    import asyncio
    return asyncio.run(_dev(args))


async def _dev(args: argparse.Namespace) -> int:
    """The embedded runtime with Restate's ingress and admin API, until Ctrl-C or SIGTERM."""
    import asyncio

    from .facade import Runtime
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before anything starts: a signal at any moment stops cleanly
        loop.add_signal_handler(sig, stop.set)
    services = _services_at(args.target)
    rt = Runtime(*services, clock=args.clock, store=args.store)
    try:
        door = await rt.serve_http(host=args.host, ingress_port=args.ingress_port, admin_port=args.admin_port)
    except (OSError, ImportError) as exc:  # ImportError: hypercorn, an extra, is not installed
        print(f"cannot serve: {exc}", file=sys.stderr, flush=True)
        rt.close()
        return 1
    names = ", ".join(s.name for s in services)
    print(f"playground dev ({args.clock} clock{', store ' + args.store if args.store else ''}) serving {names}: "
          f"ingress {door.ingress_url}, admin {door.admin_url}", flush=True)
    print(f"try: RESTATE_ADMIN_URL={door.admin_url} restate invocations list; Ctrl-C stops it", flush=True)
    try:
        await stop.wait()
    finally:
        await door.close()
        rt.close()
    print("stopped", flush=True)
    return 0


def _cmd_install_cli(args: argparse.Namespace) -> int:
    from .real import find_cli_binary
    print(find_cli_binary(install=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playground", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve services with hypercorn and register them with a Restate server")
    p.add_argument("target", help="MODULE:ATTR (a service or a list of services), or MODULE")
    p.add_argument("--admin-url", default=os.environ.get("RESTATE_ADMIN_URL", "http://127.0.0.1:9070"))
    p.add_argument("--port", type=int, default=9080, help="port to serve on (default 9080; 0 for a free one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--no-register", action="store_true", help="only serve; register yourself")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("server", help="run a real restate-server on 127.0.0.1 (installed from npm on first use)")
    p.add_argument("--ingress-port", type=int, default=8080)
    p.add_argument("--admin-port", type=int, default=9070)
    p.add_argument("--node-port", type=int, default=5122)
    p.add_argument("--base-dir", default=None, help="keep data here (default: a temporary directory)")
    p.set_defaults(func=_cmd_server)

    p = sub.add_parser("install-server", help="install the restate-server npm package into the cache")
    p.set_defaults(func=_cmd_install)

    p = sub.add_parser("dev", help="run services on the embedded runtime behind Restate's ingress and admin API "
                                   "(for curl, Restate's clients and the restate CLI)")
    p.add_argument("target", help="MODULE:ATTR (a service or a list of services), or MODULE")
    p.add_argument("--ingress-port", type=int, default=8080, help="default 8080; 0 for a free one")
    p.add_argument("--admin-port", type=int, default=9070, help="default 9070; 0 for a free one")
    p.add_argument("--clock", choices=["real", "virtual"], default="real",
                   help="real (default): timers follow the wall clock; virtual: time skips while idle")
    p.add_argument("--store", default=None, help="keep everything in this SQLite file (resumes from it)")
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=_cmd_dev)

    p = sub.add_parser("install-cli", help="install the `restate` CLI npm package into the cache; prints its path")
    p.set_defaults(func=_cmd_install_cli)

    args = parser.parse_args(argv)
    if getattr(args, "port", None) == 0:
        args.port = None
    try:
        return int(args.func(args))
    except ImportError as exc:  # an extra is missing: its message says which to install
        if exc.name != "hypercorn":
            raise
        print(exc, file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
