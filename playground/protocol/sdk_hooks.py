"""Observe the exact delays the SDK is asked for, so the virtual clock can use them.

The SDK's core turns `ctx.sleep(d)` and `send_delay=d` into absolute wall-clock times before we see
them; subtracting our own wall clock would be off by however long user code ran in between. Instead we
wrap two pass-through methods of the SDK's Python VM wrapper and record their millisecond arguments for
the attempt that made them. Nothing is changed: outside a playground attempt the wrappers only delegate.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from .driver import current_attempt

_installed = False


class _QuietInsideAttempts(logging.Filter):
    """The SDK logs every handler exception with a traceback; inside the playground the failure is already
    in the journal and the invocation's record, so keep notebook cells clean."""

    def filter(self, record: logging.LogRecord) -> bool:
        return current_attempt.get() is None


def install() -> bool:
    """Wrap VMWrapper.sys_sleep/sys_send and quiet SDK logs inside attempts, once per process. Returns False if the SDK layout is unexpected."""
    global _installed
    if _installed:
        return True
    try:
        from restate.vm import VMWrapper
    except ImportError:  # pragma: no cover - the SDK is a hard dependency
        return False
    orig_sleep = getattr(VMWrapper, "sys_sleep", None)
    orig_send = getattr(VMWrapper, "sys_send", None)
    if orig_sleep is None or orig_send is None:
        return False

    @functools.wraps(orig_sleep)
    def sys_sleep(self: Any, millis: int, *args: Any, **kwargs: Any) -> Any:
        _record(self, "sleep", millis)
        return orig_sleep(self, millis, *args, **kwargs)

    @functools.wraps(orig_send)
    def sys_send(self: Any, service: str, handler: str, parameter: bytes, key: Any = None, delay: Any = None,
                 *args: Any, **kwargs: Any) -> Any:
        _record(self, "send", delay or 0)
        return orig_send(self, service, handler, parameter, key, delay, *args, **kwargs)

    for name in ("restate", "restate.server", "restate.server_context", "restate.vm"):
        logging.getLogger(name).addFilter(_QuietInsideAttempts())
    VMWrapper.sys_sleep = sys_sleep  # type: ignore[method-assign]
    VMWrapper.sys_send = sys_send  # type: ignore[method-assign]
    _installed = True
    return True


def _record(vm_wrapper: Any, kind: str, millis: int) -> None:
    attempt = current_attempt.get()
    if attempt is None:
        return
    try:
        replaying = vm_wrapper.is_replaying()
    except Exception:  # noqa: BLE001 - observation must never break the SDK
        replaying = False
    if not replaying:  # replayed commands are not sent again, so they must not be queued
        attempt.delays.append((kind, int(millis)))
