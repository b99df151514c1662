"""Observe two things the wire protocol does not say, by wrapping pass-through methods of the SDK's VM wrapper.

1. Exact delays. The SDK's core turns `ctx.sleep(d)` and `send_delay=d` into absolute wall-clock times
   before we see them; subtracting our own wall clock would be off by however long user code ran in
   between. `sys_sleep`/`sys_send` are wrapped to record their millisecond arguments.
2. When the SDK is blocked on the server. `do_progress` returning "wait for external progress" means the
   handler awaits something only the runtime can deliver. That is what lets the virtual clock skip time,
   and lets an await that can never finish raise instead of hanging.

Both only observe, for the attempt running in the current context; elsewhere the wrappers just delegate.
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
    """Wrap VMWrapper.sys_sleep/sys_send/do_progress and quiet SDK logs inside attempts, once per process. Returns False if the SDK layout is unexpected."""
    global _installed
    if _installed:
        return True
    try:
        from restate.vm import VMWrapper
    except ImportError:  # pragma: no cover - the SDK is a hard dependency
        return False
    orig_sleep = getattr(VMWrapper, "sys_sleep", None)
    orig_send = getattr(VMWrapper, "sys_send", None)
    orig_progress = getattr(VMWrapper, "do_progress", None)
    try:
        from restate.vm import DoProgressWaitExternalProgress
    except ImportError:
        return False
    if orig_sleep is None or orig_send is None or orig_progress is None:
        return False

    @functools.wraps(orig_progress)
    def do_progress(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = orig_progress(self, *args, **kwargs)
        attempt = current_attempt.get()
        if attempt is not None:
            attempt.set_sdk_waiting(isinstance(result, DoProgressWaitExternalProgress))
        return result

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
    VMWrapper.do_progress = do_progress  # type: ignore[method-assign]
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
