"""A cap on request bodies, enforced while they arrive.

Starlette spools a multipart file to disk before the endpoint runs, so the upload's own size
check would come after a 10 GB body had been written.  This ASGI middleware refuses a
declared ``Content-Length`` over the cap at once and stops reading an undeclared (chunked)
body as soon as it passes the cap: 413 either way, and nothing reaches the handler.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit"]


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> str:
        return f"request body larger than the limit of {self.limit} bytes: nothing imported"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": self._refusal()}, status_code=413)(scope, receive,
                                                                              send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # raised inside the body parser; FastAPI passes HTTPException through
                    raise HTTPException(413, self._refusal())
            return message

        await self.app(scope, counted, send)
