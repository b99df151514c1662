"""The real `restate` CLI (npm @restatedev/restate 1.7.12) against the playground's HTTP door and against a
real restate-server, on the same scenario: each command's output must be the same on both, once ids, times,
durations, addresses and column padding are masked.

Known and masked on purpose: the real ingress gives every invocation an auto-generated idempotency key (the
CLI prints "Idempotency key: 01M8..."), the playground does not (docs/behaviour.md, deliberate differences); and the
real server lists services (and a service's handlers) in an order of its own, so the listings by service
compare as sorted lines.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

import playground as pg
from playground import real

import http_services as S

CONFIG_HOME = tempfile.mkdtemp(prefix="restate-cli-config-")  # the CLI reads no configuration of the user's
# commands whose output lists services (or handlers) in the real server's own order: compared as sorted lines
COMMANDS_BY_SERVICE = {("services", "list"), ("services", "status"), ("deployments", "list"), ("services", "describe")}


@pytest.fixture(scope="module")
def cli() -> Path:
    if os.environ.get("PLAYGROUND_REAL_SERVER", "").lower() == "skip":
        pytest.skip("PLAYGROUND_REAL_SERVER=skip")
    try:
        return real.find_cli_binary(install=True)
    except real.RestateServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the restate CLI is required under CI but is unavailable: {exc}", pytrace=False)
        pytest.skip(f"no restate CLI: {exc}")


async def run_cli(cli: Path, admin_url: str, *args: str, editor: Path | None = None) -> tuple[int, str]:
    env = {**os.environ, "RESTATE_ADMIN_URL": admin_url, "NO_COLOR": "1", "CI": "1", "TERM": "dumb",
           "RESTATE_CLI_CONFIG_HOME": CONFIG_HOME}  # not the user's own CLI configuration
    env.pop("RESTATE_ENVIRONMENT", None)
    if editor is not None:
        env["RESTATE_EDITOR"] = str(editor)
    proc = await asyncio.create_subprocess_exec(str(cli), *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert "panicked" not in err.decode(), f"restate {' '.join(args)} panicked:\n{err.decode()}"
    return proc.returncode, out.decode()


_ID = re.compile(r"\b(inv|dp)_1[0-9A-Za-z]{20,40}\b")
_TIMES = [re.compile(p) for p in (
    r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: ?[+-]\d\d:\d\d|Z)?",
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d\d:\d\d:\d\d [+-]\d\d:\d\d")]
_DURATION = re.compile(r"\((?:invoked )?[^()]*?(?:ago|ms|seconds?|minutes?|hours?|days?|weeks?|months?|years?)\)")
_URL = re.compile(r"https?://[^\s\"]+")


def normalize(text: str, by_service: bool = False) -> list[str]:
    """Mask what may differ between engines: ids (numbered by first appearance), times, durations, URLs,
    idempotency keys, and the padding of columns. `by_service`: a listing whose order of services is the
    server's own; its ids are not numbered and its lines (and the items of a line) compare sorted."""
    names: dict[str, str] = {}

    def name(m: re.Match[str]) -> str:
        if by_service:
            return f"<{m.group(1)}>"
        return names.setdefault(m.group(0), f"<{m.group(1)}{len([n for n in names if n.startswith(m.group(1))]) + 1}>")
    text = _ID.sub(name, text)
    for pattern in _TIMES:
        text = pattern.sub("<time>", text)
    text = _DURATION.sub("(<duration>)", _URL.sub("<url>", text))
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    lines = [re.sub(r"^[―─]+$", "―", line) for line in lines]  # title underlines follow the title's width
    lines = [line for line in lines if line and not line.startswith("Idempotency key:")]
    if not by_service:
        return lines
    return sorted(part for line in lines for part in re.split(r"(?:^| )- ", line) if part)


class Engine:
    """One engine's ingress and admin URLs, and the CLI pointed at it."""

    def __init__(self, cli: Path, ingress_url: str, admin_url: str, editor: Path) -> None:
        self.cli, self.ingress_url, self.admin_url, self.editor = cli, ingress_url, admin_url, editor

    async def scenario(self) -> dict[str, str]:
        """The same requests on both engines; returns the invocation ids the commands name."""
        async with httpx.AsyncClient(base_url=self.ingress_url, timeout=30) as c:
            assert (await c.post("/Counter/Mary/add", json=5)).json() == 5
            w1 = (await c.post("/Waiter/w1/wait/send")).json()["invocationId"]
            w2 = (await c.post("/Waiter/w2/wait/send")).json()["invocationId"]
            done = (await c.post("/Greeter/greet", json="x")).headers["x-restate-id"]
        async with httpx.AsyncClient(base_url=self.admin_url, timeout=30) as admin:
            for _ in range(300):
                found = (await admin.post("/query", json={"query": "SELECT k.service_key FROM state k WHERE "
                                                                   "k.service_name = 'Waiter'"},
                                          headers={"accept": "application/json"})).json()["rows"]
                if len(found) == 2:
                    break
                await asyncio.sleep(0.02)
        return {"w1": w1, "w2": w2, "done": done}

    async def outputs(self) -> dict[str, tuple[int, list[str]]]:
        ids = await self.scenario()
        commands: list[tuple[str, ...]] = [
            ("invocations", "list"), ("invocations", "describe", ids["w1"]), ("services", "list"),
            ("services", "describe", "Counter"), ("services", "status"), ("deployments", "list"),
            ("state", "get", "Counter", "Mary"), ("state", "edit", "Counter", "Mary", "--yes"),
            ("state", "get", "Counter", "Mary"),
            ("sql", "SELECT target, status FROM sys_invocation ORDER BY target"),
            ("sql", "--json", "SELECT target, status, retry_count FROM sys_invocation ORDER BY target"),
            ("invocations", "cancel", ids["w1"], "--yes"), ("invocations", "kill", ids["w2"], "--yes"),
            ("invocations", "purge", ids["done"], "--yes"), ("invocations", "list"),
            ("sql", "SELECT target, status, completion_failure FROM sys_invocation ORDER BY target"),
        ]
        out = {}
        for i, args in enumerate(commands):
            if args[:2] == ("invocations", "list") and i:
                await asyncio.sleep(0.3)  # the cancel and kill have taken effect (the real server is async)
            rc, text = await run_cli(self.cli, self.admin_url, *args, editor=self.editor)
            shown = " ".join(next((k for k, v in ids.items() if v == a), a) for a in args)
            out[f"{i:02d} restate {shown}"] = (rc, normalize(text, by_service=args[:2] in COMMANDS_BY_SERVICE))
        return out


@pytest.fixture(scope="module")
def editor(tmp_path_factory) -> Path:
    """A non-interactive $RESTATE_EDITOR for `state edit`: sets the counter's total to 6."""
    path = tmp_path_factory.mktemp("editor") / "edit.sh"
    path.write_text("#!/bin/sh\nsed -i 's/5/6/' \"$1\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(scope="module")
def real_server() -> Any:
    """A real restate-server of this module's own, with http_services registered (the session's server has
    services of the same names)."""
    from playground.pytest_plugin import start_real_server
    server = start_real_server()
    try:
        with real.serve(*S.ALL) as app:
            server.server.register(app.url)
            yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def real_outputs(cli, editor, real_server) -> dict[str, tuple[int, list[str]]]:
    return asyncio.run(Engine(cli, real_server.ingress_url, real_server.admin_url, editor).outputs())


@pytest.fixture(scope="module")
def door_outputs(cli, editor) -> dict[str, tuple[int, list[str]]]:
    async def main() -> Any:
        rt = pg.Runtime(*S.ALL, clock="real")  # as `python -m playground dev`: times move as on the server
        async with rt.serve_http() as door:
            return await Engine(cli, door.ingress_url, door.admin_url, editor).outputs()
    return asyncio.run(main())


def test_every_cli_command_prints_the_same_on_the_door_and_on_restate_server(real_outputs, door_outputs) -> None:
    assert list(door_outputs) == list(real_outputs)
    differ = {command: "\n".join(difflib.unified_diff(expected[1], door_outputs[command][1], "restate-server",
                                                        "playground", lineterm=""))
              for command, expected in real_outputs.items() if door_outputs[command] != expected}
    assert not differ, "\n\n".join(f"{command}:\n{diff}" for command, diff in differ.items())


def test_the_cli_commands_succeed_and_change_what_they_should(door_outputs) -> None:
    assert all(rc == 0 for rc, _ in door_outputs.values()), {k: v for k, v in door_outputs.items() if v[0]}
    after_edit = door_outputs["08 restate state get Counter Mary"][1]
    assert "total 6" in after_edit
    final = "\n".join(door_outputs["15 restate sql SELECT target, status, completion_failure FROM sys_invocation "
                                   "ORDER BY target"][1])
    assert "Waiter/w1/wait completed [409] cancelled" in final and "Waiter/w2/wait completed [409] killed" in final
    assert "Greeter/greet" not in final  # purged


async def test_door_restate_runs_the_cli_from_a_cell_without_blocking_the_loop(cli) -> None:
    rt = pg.Runtime(*S.ALL)
    async with rt.serve_http() as door:
        sent = await rt.object_send(S.wait, key="stuck")
        await rt.settle()
        result = await door.restate("invocations cancel", sent.invocation_id, "--yes")
        assert result.ok and "Cancelled 1 invocations" in repr(result)
        await rt.settle()
        assert rt.invocation(sent.invocation_id).status == "completed"
        listed = await door.restate("invocations", "list")
        assert listed.ok


async def test_door_restate_without_the_cli_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setattr(real, "find_cli_binary", lambda install=False: (_ for _ in ()).throw(
        real.RestateServerUnavailable("not installed")))

    rt = pg.Runtime(*S.ALL)
    async with rt.serve_http() as door:
        result = await door.restate("invocations list")
    assert result.returncode is None and not result.ok
    assert "python -m playground install-cli" in repr(result)


async def test_the_ingress_refuses_bad_requests_as_restate_server_does(real_server) -> None:
    from test_http_ingress import BAD_REQUESTS

    async def answers(ingress_url: str) -> list[tuple[int, Any, str | None]]:
        async with httpx.AsyncClient(base_url=ingress_url, timeout=30) as c:
            out = []
            for method, path, body, headers, _ in BAD_REQUESTS:
                resp = await c.request(method, path, content=body, headers=headers)
                out.append((resp.status_code, resp.json(), resp.headers.get("x-restate-error-source")))
            return out

    async def door_answers() -> list[tuple[int, Any, str | None]]:
        async with pg.Runtime(*S.ALL).serve_http() as door:
            return await answers(door.ingress_url)
    assert await door_answers() == await answers(real_server.ingress_url)


MISSING = "inv_1" + "1" * 33
ADMIN_REQUESTS = [
    ("PATCH", "/v4/invocations/xyz/cancel", None),
    ("PATCH", "/v4/invocations/inv_1abc/kill", None),
    *[("PATCH", f"/v4/invocations/{MISSING}/{op}", None) for op in ("cancel", "kill", "purge", "pause", "resume")],
    ("GET", "/v4/services/Nope", None),
    ("POST", "/v4/services/Greeter/state", {"object_key": "x", "new_state": {}}),
    ("GET", "/v9/health", None),
    ("POST", "/v4/query", {}),
]


async def test_the_admin_api_refuses_bad_requests_as_restate_server_does(real_server) -> None:
    async def answers(admin_url: str) -> list[tuple[int, str]]:
        async with httpx.AsyncClient(base_url=admin_url, timeout=30) as c:
            out = []
            for method, path, doc in ADMIN_REQUESTS:
                resp = await c.request(method, path, json=doc, headers={"accept": "application/json"})
                out.append((resp.status_code, resp.text.split(" at line")[0]))
            version = (await c.get("/version")).json()
            out.append((200, " ".join(sorted(set(version) - {"ingress_endpoint"}))))
            return out

    async def door_answers() -> list[tuple[int, str]]:
        async with pg.Runtime(*S.ALL).serve_http() as door:
            return await answers(door.admin_url)
    assert await door_answers() == await answers(real_server.admin_url)
