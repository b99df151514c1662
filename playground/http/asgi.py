"""A small ASGI layer: read a request (with a body cap), write a response, and Restate's error bodies."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MAX_BODY = 10 * 1024 * 1024  # bytes


class BodyTooLarge(Exception):
    pass


@dataclass
class Request:
    method: str
    path: str  # as sent, still percent-encoded
    segments: list[str]  # decoded path segments
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(doc, separators=(",", ":")).encode(),
                   {"content-type": "application/json", **(headers or {})})


def ingress_error(status: int, message: str, source: str = "ingress", headers: dict[str, str] | None = None,
                  **extra: Any) -> Response:
    """An error as Restate's ingress writes it: {code, message, source} and x-restate-error-source."""
    doc = {"code": status, "message": message, **extra, "source": source}
    return Response.json(status if 100 <= status <= 599 else 500, doc,
                         {"x-restate-error-source": source, **(headers or {})})


def admin_error(status: int, message: str) -> Response:
    """An error as Restate's admin API writes it: {message, restate_code}."""
    return Response.json(status, {"message": message, "restate_code": None})


async def read_request(scope: Scope, receive: Receive, max_body: int) -> Request:
    """The request with its whole body; raises BodyTooLarge past `max_body` bytes (without reading on)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw_path = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    # interior empty segments are kept: `/Counter//add` is the empty key, as on Restate
    parts = path.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()
    segments = [urllib.parse.unquote(s) for s in parts]
    query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    return Request(scope["method"].upper(), path, segments, query, headers, b"".join(chunks))


async def write(send: Send, response: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the server's startup and shutdown messages (nothing to set up: the runtime already runs)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
