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
_M = messages.TYPE_IDS
_INPUT, _START = messages.CLASSES["Input"], messages.CLASSES["Start"]


def _node_label(node: Any) -> str:
    return f"lock {node[0]}/{node[1]}" if isinstance(node, tuple) else node


def _failure_msg(f: Failure) -> Any:
    return messages.new("Failure", code=f.code, message=f.message,
                        metadata=[messages.new("FailureMetadata", key=k, value=v) for k, v in f.metadata.items()])


def _failure_from(msg: Any) -> Failure:
    return Failure(msg.code, msg.message, {m.key: m.value for m in msg.metadata})


def _value_or_failure(result: bytes | Failure) -> dict[str, Any]:
    if isinstance(result, Failure):
        return {"failure": _failure_msg(result)}
    return {"value": messages.new("Value", content=result)}


def _ms(delta: timedelta | None, what: str) -> int:
    if delta is None:
        return 0
    if not isinstance(delta, timedelta):
        raise TypeError(f"{what} must be a datetime.timedelta, not {type(delta).__name__}")
    if delta < timedelta(0):
        raise ValueError(f"{what} must not be negative (got {delta})")
    return int(delta.total_seconds() * 1000)


class _Registered:
    """One revision of a service: what discovery said about it, the deployment serving it, and the SDK object."""

    def __init__(self, info: ServiceInfo, deployment: Deployment, obj: Any, revision: int) -> None:
        self.info, self.deployment, self.obj, self.revision = info, deployment, obj, revision


class _AttemptFailed(Exception):
    """A command the runtime cannot honour: the attempt fails and is retried, as Restate does."""
