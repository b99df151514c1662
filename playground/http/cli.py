"""Running the real `restate` CLI from a notebook cell against the door: `await door.restate("invocations list")`.

Why not `!restate ...`: a shell escape runs synchronously on the kernel's thread, so the event loop the door
serves on is blocked while the CLI waits for its answer, and the CLI times out. Running the CLI as an
asyncio subprocess keeps the loop free. (`!restate` works against `python -m playground dev`, which runs in
its own process.)
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from dataclasses import dataclass

INSTALL_HINT = ("the `restate` CLI is not installed. Get it with `python -m playground install-cli` (needs npm; "
                "it goes into ~/.cache/restate-playground) or `npm install -g @restatedev/restate`, or see "
                "https://docs.restate.dev/develop/local_dev for other ways.")


_QUERY_TOOK = re.compile(r"\.? ?Query took [0-9.]+\s*[a-zµ]+")


@dataclass
class CliResult:
    """What one command printed; shows as its output in a notebook."""

    args: list[str]
    returncode: int | None  # None: the CLI is not installed
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __repr__(self) -> str:
        if self.returncode is None:
            return self.stderr
        text = self.stdout.rstrip()
        notes = _QUERY_TOOK.sub("", self.stderr).rstrip()  # the CLI's timing: different on every run
        if notes.strip():
            text = f"{text}\n{notes}" if text else notes
        return text if self.returncode == 0 else f"{text}\n(exited with {self.returncode})"

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(repr(self))  # type: ignore[attr-defined]


def _split(args: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for a in args:
        if not isinstance(a, str):
            raise TypeError(f"restate's arguments are strings, not {type(a).__name__} ({a!r})")
        out.extend(shlex.split(a))
    return out


async def shell(command: str, env: dict[str, str], timeout: float = 60.0) -> CliResult:
    """A shell command (say, curl) as an asyncio subprocess, so the door keeps answering while it runs."""
    if not isinstance(command, str):
        raise TypeError(f"command must be a str, not {type(command).__name__}")
    proc = await asyncio.create_subprocess_shell(command, env={**os.environ, **env}, stdin=asyncio.subprocess.DEVNULL,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return await _finish(proc, [command], timeout)


async def _finish(proc: asyncio.subprocess.Process, argv: list[str], timeout: float) -> CliResult:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()  # only the process this call started
        await proc.wait()
        raise
    return CliResult(argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def run(admin_url: str, *args: str, timeout: float = 60.0) -> CliResult:
    """`restate ARGS` with RESTATE_ADMIN_URL pointing at `admin_url`; never raises for a missing CLI."""
    argv = _split(args)
    from ..real import RestateServerUnavailable, find_cli_binary
    try:
        binary = find_cli_binary(install=False)
    except RestateServerUnavailable:
        return CliResult(argv, None, "", INSTALL_HINT)
    # plain text (no colours, no emoji): what a notebook stores is then the same on every machine
    # (a Jupyter kernel sets CLICOLOR_FORCE, which the CLI obeys over NO_COLOR)
    env = {**os.environ, "RESTATE_ADMIN_URL": admin_url, "NO_COLOR": "1", "TERM": "dumb", "CLICOLOR": "0"}
    for name in ("CLICOLOR_FORCE", "FORCE_COLOR"):
        env.pop(name, None)
    env.pop("RESTATE_ENVIRONMENT", None)
    proc = await asyncio.create_subprocess_exec(str(binary), *argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    return await _finish(proc, argv, timeout)
