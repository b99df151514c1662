"""Observe two things the wire protocol does not say, by wrapping pass-through methods of the SDK's VM wrapper.

1. Exact delays. The SDK's core turns `ctx.sleep(d)` and `send_delay=d` into absolute wall-clock times
   before we see them; subtracting our own wall clock would be off by however long user code ran in
   between. `sys_sleep`/`sys_send` are wrapped to record their millisecond arguments.
2. When the SDK is blocked on the server. `do_progress` returning "wait for external progress" means the
   handler awaits something only the runtime can deliver. That is what lets the virtual clock skip time,
   and lets an await that can never finish raise instead of hanging.

Both only observe, for the attempt running in the current context; elsewhere the wrappers just delegate.

3. When a ctx.run closure begins to execute (the SDK runs it only once its progress loop gets to it, not
   when the Run command is sent): counted on the attempt, so a strategy that holds the attempt's messages
   can tell a closure still running from one whose proposal waits in the queue.

4. BaseExceptions from handler code. The SDK lets KeyboardInterrupt and SystemExit through without recording
   anything, and takes a CancelledError for its own cancellation and swallows it, leaving the attempt
   hanging. `invoke_handler` is wrapped to hand them to the SDK as an ordinary failure (so the attempt ends
   with an Error carrying the stack trace), noting the original on the attempt; an async ctx.run closure
   that raises KeyboardInterrupt or SystemExit ends its attempt as failed instead of escaping the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from .driver import current_attempt


class RaisedInHandler(Exception):
    """A BaseException raised by handler code, passed to the SDK as an ordinary failure of the attempt."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original

    def __repr__(self) -> str:
        hint = (" (not a cancellation of the invocation, which the handler sees as TerminalError 409: a task or "
                "future it awaited was cancelled)" if isinstance(self.original, asyncio.CancelledError) else "")
        return f"{self.original!r} raised in handler code{hint}"


def _escaped(exc: BaseException) -> bool:
    """Whether `exc`, caught around handler code in an attempt, escaped handler code (rather than being
    the cancellation of the attempt's own task, which the SDK must see as it is)."""
    if current_attempt.get() is None:
        return False
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is not None and not task.cancelling()
    return True

_installed = False


class _QuietInsideAttempts(logging.Filter):
    """The SDK logs every handler exception with a traceback; inside the playground the failure is already
    in the journal and the invocation's record, so keep notebook cells clean."""

    def filter(self, record: logging.LogRecord) -> bool:
        return current_attempt.get() is None


def install() -> bool:
    """Wrap VMWrapper.sys_sleep/sys_send/do_progress and quiet SDK logs inside attempts, once per process.
    Returns False if the SDK layout is unexpected."""
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

    if not _wrap_handler_code():
        return False
    for name in ("restate", "restate.server", "restate.server_context", "restate.vm"):
        logging.getLogger(name).addFilter(_QuietInsideAttempts())
    VMWrapper.sys_sleep = sys_sleep  # type: ignore[method-assign]
    VMWrapper.sys_send = sys_send  # type: ignore[method-assign]
    VMWrapper.do_progress = do_progress  # type: ignore[method-assign]
    _installed = True
    return True


def _wrap_handler_code() -> bool:
    """Wrap the SDK's invoke_handler and ServerInvocationContext.create_run_coroutine (see 3. and 4. above)."""
    try:
        from restate import server_context
    except ImportError:  # pragma: no cover - the SDK is a hard dependency
        return False
    orig_invoke = getattr(server_context, "invoke_handler", None)
    context_cls = getattr(server_context, "ServerInvocationContext", None)
    orig_run = getattr(context_cls, "create_run_coroutine", None)
    if orig_invoke is None or orig_run is None:
        return False

    @functools.wraps(orig_invoke)
    async def invoke_handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return await orig_invoke(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit, asyncio.CancelledError) as exc:
            if not _escaped(exc):
                raise
            attempt = current_attempt.get()
            attempt.escaped = attempt.escaped or exc  # type: ignore[union-attr]
            raise RaisedInHandler(exc) from exc

    @functools.wraps(orig_run)
    async def create_run_coroutine(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = current_attempt.get()
        if started is not None:
            started.runs_started += 1  # its proposal, once sent, says it has finished
        try:
            return await orig_run(self, *args, **kwargs)
        except (KeyboardInterrupt, SystemExit) as exc:
            attempt = current_attempt.get()
            if attempt is None:
                raise
            attempt.fail(exc)  # in a task of its own: raising would take the event loop down with it

    server_context.invoke_handler = invoke_handler
    context_cls.create_run_coroutine = create_run_coroutine  # type: ignore[union-attr]
    return True


def _record(vm_wrapper: Any, kind: str, millis: int) -> None:
    attempt = current_attempt.get()
    if attempt is None:
        return
    try:
        replaying = vm_wrapper.is_replaying()
    except Exception:
        replaying = False
    if not replaying:  # replayed commands are not sent again, so they must not be queued
        attempt.delays.append((kind, int(millis)))
