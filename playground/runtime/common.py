"""Constants and small helpers shared by the runtime's modules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..protocol import messages
from ..protocol.deployment import Deployment, ServiceInfo
from .model import Failure

DAY_MS = 24 * 3600 * 1000
# Handler code that neither finishes nor reaches a Restate await for this long (wall time) while a cell
# waits is reported instead of hanging the cell (Restate's own inactivity timeout is 1 minute).
INACTIVITY_TIMEOUT_S = 60.0
TYPE_IDS = messages.TYPE_IDS
INPUT_MESSAGE, START_MESSAGE = messages.CLASSES["Input"], messages.CLASSES["Start"]


def node_label(node: Any) -> str:
    """A wait-for graph node as text: an invocation id, or `lock <service>/<key>`."""
    return f"lock {node[0]}/{node[1]}" if isinstance(node, tuple) else str(node)


def failure_message(f: Failure) -> Any:
    return messages.new("Failure", code=f.code, message=f.message,
                        metadata=[messages.new("FailureMetadata", key=k, value=v) for k, v in f.metadata.items()])


def failure_from(msg: Any) -> Failure:
    return Failure(msg.code, msg.message, {m.key: m.value for m in msg.metadata})


def value_or_failure(result: bytes | Failure) -> dict[str, Any]:
    if isinstance(result, Failure):
        return {"failure": failure_message(result)}
    return {"value": messages.new("Value", content=result)}


def duration_ms(delta: timedelta | None, what: str) -> int:
    if delta is None:
        return 0
    if not isinstance(delta, timedelta):
        raise TypeError(f"{what} must be a datetime.timedelta, not {type(delta).__name__}")
    if delta < timedelta(0):
        raise ValueError(f"{what} must not be negative (got {delta})")
    return int(delta.total_seconds() * 1000)


def _utf8(text: str, what: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} must be text that UTF-8 can encode; {text!r} cannot be encoded ({exc.reason}, "
                         f"at position {exc.start})") from None


def check_request(target: Any, headers: Any, idem: Any) -> None:
    """A request's target, headers and idempotency key, checked before anything is created: each must be
    text that goes on the wire (a value that cannot would fail half-way through starting the invocation)."""
    for what, value in (("service", target.service), ("handler", target.handler)):
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if target.key is not None:
        if not isinstance(target.key, str):
            raise TypeError(f"key must be a str, not {type(target.key).__name__}")
        _utf8(target.key, "key")
    if headers is not None:
        if not isinstance(headers, dict):
            raise TypeError(f"headers must be a dict of str to str, not {type(headers).__name__}")
        for k, v in headers.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"headers must be a dict of str to str; {k!r}: {v!r} is "
                                f"{type(k).__name__}: {type(v).__name__}")
            _utf8(k, "a header name")
            _utf8(v, f"header {k!r}")
    if idem is not None:
        if not isinstance(idem, str) or not idem:
            raise ValueError("idempotency_key must be a non-empty str")
        _utf8(idem, "idempotency_key")


class Registered:
    """One revision of a service: what discovery said about it, the deployment serving it, and the SDK object."""

    def __init__(self, info: ServiceInfo, deployment: Deployment, obj: Any, revision: int) -> None:
        self.info, self.deployment, self.obj, self.revision = info, deployment, obj, revision


class AttemptFailed(Exception):
    """A command the runtime cannot honour: the attempt fails (with `code`, 500 unless said) and is retried,
    as Restate does."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.code = code
