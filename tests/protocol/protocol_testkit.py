"""Small helpers shared by the protocol-layer tests: build journal frames and pump an Attempt deterministically.

An attempt made with `open_attempt` keeps what the driver pushes (each message the SDK sends, then its end)
in a feed that `pump` and `pump_until` read. Nothing here waits on the wall clock. Pumping means yielding to
the event loop a bounded number of times (`asyncio.sleep(0)`), so a test that expects progress fails instead
of hanging when progress never comes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import restate

from playground.protocol import framing, messages
from playground.protocol.deployment import AsgiDeployment
from playground.protocol.driver import Attempt, AttemptEnded, Received

START_ID = bytes(range(16))
DEBUG_ID = "inv_1testinvocation"

# Enough yields for any of these small handlers to make all the progress it can (a trivial invocation
# needs about 10 loop iterations); far below anything that would make the suite slow.
ROUNDS = 200

Item = Received | AttemptEnded

# what each attempt made by open_attempt has pushed and the test has not read yet
_FEEDS: weakref.WeakKeyDictionary[Attempt, deque[Item]] = weakref.WeakKeyDictionary()


def open_attempt(app: Any, service: str, handler: str, **kwargs: Any) -> Attempt:
    """An Attempt (same arguments) whose messages and end are kept for pump() and pump_until() to read."""
    return keep_feed(Attempt(app, service, handler, **kwargs))


def keep_feed(attempt: Attempt) -> Attempt:
    """Keep what `attempt` pushes (before it starts) for pump() and pump_until() to read."""
    feed: deque[Item] = deque()
    _FEEDS[attempt] = feed
    attempt.on_message = feed.append
    attempt.on_end = feed.append
    return attempt


def _take(attempt: Attempt) -> Item | None:
    feed = _FEEDS[attempt]
    return feed.popleft() if feed else None


def make_app(*services: Any) -> Any:
    """An SDK ASGI app whose first call (discovery) ran on a worker thread, so it never takes over SIGTERM."""
    app = restate.app(list(services))
    AsgiDeployment(app).discover()
    return app


def start_msg(**fields: Any) -> Any:
    return messages.new("Start", id=START_ID, debug_id=DEBUG_ID, **fields)


def value(content: bytes) -> Any:
    return messages.new("Value", content=content)


def input_frame(body: bytes = b"") -> bytes:
    return framing.encode(messages.new("Input", value=value(body)))


def command(message: str, /, **fields: Any) -> Any:
    """Build a message through its class, which (unlike `messages.new`) accepts a field called `name`."""
    return messages.CLASSES[message](**fields)


async def pump(attempt: Attempt, rounds: int = ROUNDS) -> list[Item]:
    """Yield to the loop `rounds` times and return everything the attempt produced meanwhile."""
    out: list[Item] = []
    for _ in range(rounds):
        await asyncio.sleep(0)
        while (item := _take(attempt)) is not None:
            out.append(item)
    return out


async def pump_until(attempt: Attempt, done: Callable[[Item], bool], rounds: int = 5 * ROUNDS) -> list[Item]:
    """Collect items until one satisfies `done` (inclusive); fail if that takes more than `rounds` yields."""
    out: list[Item] = []
    for _ in range(rounds):
        while (item := _take(attempt)) is not None:
            out.append(item)
            if done(item):
                return out
        await asyncio.sleep(0)
    raise AssertionError(f"no matching item after {rounds} loop iterations; got {describe(out)}")


def is_named(*names: str) -> Callable[[Item], bool]:
    return lambda item: isinstance(item, Received) and item.name in names


def is_ended(item: Item) -> bool:
    return isinstance(item, AttemptEnded)


async def finish(attempt: Attempt) -> list[Item]:
    """Close the input and collect everything up to and including AttemptEnded."""
    attempt.close_input()
    return await pump_until(attempt, is_ended)


async def ensure_ended(attempt: Attempt) -> None:
    """Safety net for `finally:` blocks: an attempt left open would hang asyncio.run's shutdown."""
    if attempt.ended is None:
        attempt.abort()
        await pump_until(attempt, is_ended)


def names(items: list[Item]) -> list[str]:
    return [item.name if isinstance(item, Received) else "AttemptEnded" for item in items]


def received(items: list[Item], name: str) -> list[Any]:
    return [item.msg for item in items if isinstance(item, Received) and item.name == name]


def describe(items: list[Item]) -> str:
    return repr(names(items))
