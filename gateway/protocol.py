"""uvicorn's h11 protocol plus a deadline for reading each request, which uvicorn (0.54) does not offer.

uvicorn times out only idle keep-alive connections (`timeout_keep_alive`, armed after a response), and
`h11_max_incomplete_event_size` bounds how many header bytes are buffered, not how long they take: a
connection that sends its headers (or its body) a byte at a time is held, and counted against
`limit_concurrency`, for as long as the client likes. Here one timer per connection, armed when it
opens and again after each response, closes it when the request's headers and body have not all
arrived by then. Subclassing is the smallest way in: the protocol class is a documented uvicorn option
(`http=`), and the timer only reads h11's state, so uvicorn's own parsing and flow control are untouched.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

STILL_READING = (h11.IDLE, h11.SEND_BODY)
"""The client's h11 states while its request is incomplete: headers not all in, or body not all in."""


class ReadDeadlineProtocol(H11Protocol):
    """H11Protocol whose connections must deliver each whole request within `read_timeout` seconds."""

    read_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        """Start the first request's clock as the connection opens (before any byte arrives)."""
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        """The next request on this connection gets its own full deadline."""
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """No timer outlives its connection."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        """Close a connection whose request is still incomplete; one already read (or answered) goes on."""
        self._deadline = None
        if self.conn.their_state in STILL_READING and not self.transport.is_closing():
            self.transport.close()


def read_deadline_protocol(seconds: float) -> type[ReadDeadlineProtocol]:
    """The protocol class for uvicorn's `http=` option, with its deadline set (uvicorn builds it per connection)."""
    return type("ReadDeadlineProtocol", (ReadDeadlineProtocol,), {"read_timeout": seconds})
