"""The request body limit: one ASGI middleware in front of every route that reads a body.

A body over the limit answers 413 with a one-line JSON detail and `Connection: close`, so uvicorn stops
reading the connection instead of draining the rest. A `Content-Length` over the limit is refused before
any route runs (no token check, no Temporal call, nothing of the body read); a body without a length
(chunked) is counted as it streams in and refused as soon as the count passes the limit.

Why not Starlette's own `max_body_size`: it looks at `Content-Length` only when a route first reads the
body (after the token check, and on the approval page after a Temporal query), answers in plain text, and
keeps the connection open, so uvicorn goes on reading (and dropping) the rest of an oversized body.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised from `receive` when the streamed body passes the limit; turned into 413 by BodyLimit."""


class BodyLimit:
    """Refuse request bodies over `max_bytes` without reading them (see the module's docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, declared)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:  # a route that answered before reading its whole body: nothing more can be said
                raise
            await self._refuse(scope, receive, send, None)
        except ClientDisconnect:  # the client (or the read deadline, gateway/protocol.py) closed mid-body
            if started:
                raise

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, declared: int | None) -> None:
        size = f"a body of {declared} bytes" if declared is not None else "a body"
        detail = f"{size} is over the limit of {self.max_bytes} bytes (GATEWAY_MAX_BODY_BYTES)"
        response = JSONResponse({"detail": detail, "field": "body"}, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent (uvicorn has already refused a malformed one with 400)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
