"""Talking to a Restate server's ingress and admin API with the standard library only (urllib), so the
real-server path needs no HTTP client package."""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

__all__ = [
    "IngressError",
    "Response",
    "free_port",
    "http_request",
    "ingress_path",
    "ingress_request",
    "query",
    "register",
]


class IngressError(Exception):
    """A non-2xx answer from Restate's ingress or admin API: `status`, and Restate's `code`/`message` from the body."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.code, self.message, self.metadata = status, body.decode(errors="replace"), {}
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            doc = json.loads(body)
            self.code = int(doc.get("code", status))
            self.message = str(doc.get("message", ""))
            self.metadata = dict(doc.get("metadata") or {})
        super().__init__(f"[{self.code}] {self.message}")


@dataclass
class Response:
    """A 2xx answer: status, body and lower-cased headers."""

    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def http_request(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                 timeout: float = 60.0) -> Response:
    """One request; a non-2xx answer raises IngressError (connection failures raise OSError/URLError)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as exc:
        data = exc.read()
        raise IngressError(exc.code, data, {k.lower(): v for k, v in (exc.headers or {}).items()}) from None


def post_json(url: str, doc: Any, timeout: float = 60.0) -> Any:
    return http_request("POST", url, json.dumps(doc).encode(),
                        {"content-type": "application/json", "accept": "application/json"}, timeout).json()


def ingress_path(service: str, handler: str, key: str | None = None) -> str:
    """`/Service/handler` or `/Object/key/handler`, each part percent-encoded."""
    parts = [service] + ([key] if key is not None else []) + [handler]
    return "/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


def ingress_request(ingress_url: str, service: str, handler: str, body: bytes | None, key: str | None = None,
                    send: bool = False, delay: timedelta | None = None, idempotency_key: str | None = None,
                    headers: dict[str, str] | None = None, content_type: str = "application/json",
                    timeout: float = 60.0) -> Response:
    """A call (or, with `send`, a one-way send after `delay`) through the ingress."""
    url = ingress_url + ingress_path(service, handler, key) + ("/send" if send else "")
    if send and delay:
        url += f"?delay={int(delay.total_seconds() * 1000)}ms"
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("content-type", content_type)
    if idempotency_key is not None:
        hdrs["idempotency-key"] = idempotency_key
    return http_request("POST", url, body, hdrs, timeout)


def register(admin_url: str, uri: str, force: bool = True) -> dict[str, Any]:
    """POST {admin_url}/deployments {"uri": uri, "force": force}: Restate discovers the services at `uri`."""
    answer: dict[str, Any] = post_json(admin_url.rstrip("/") + "/deployments", {"uri": uri, "force": force})
    return answer


def query(admin_url: str, sql: str) -> list[dict[str, Any]]:
    """POST {admin_url}/query with `accept: application/json`: the rows of a SQL query."""
    rows: list[dict[str, Any]] = (post_json(admin_url.rstrip("/") + "/query", {"query": sql}) or {}).get("rows", [])
    return rows


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another program may take it before it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
