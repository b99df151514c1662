"""Restate's admin API (v4 and unversioned) over the embedded runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .asgi import Request, Response, admin_error

if TYPE_CHECKING:
    from ..runtime.core import Runtime


class AdminApp:
    def __init__(self, rt: "Runtime", door: Any) -> None:
        self.rt = rt
        self.door = door

    async def handle(self, req: Request) -> Response:
        return admin_error(404, "not found")
