"""A threaded HTTP server with a fixed number of workers, none of which a slow client can hold.

At most `threads` requests are served at once; a connection that finds them all busy is answered 503 at once
from the accepting thread, never queued behind slow clients. `DeadlineReader` gives a request one deadline
for all its bytes (a timeout per read would let a client that sends a byte every few seconds hold a worker).
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from http.server import HTTPServer
from typing import Any, Generic, TypeVar

log = logging.getLogger("codec_server")

App = TypeVar("App")

_BUSY_BODY = b'{"error": "all workers are busy; try again"}'
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)
"""What a connection gets when every worker is busy: sent at once, from the accepting thread."""


class PooledHTTPServer(HTTPServer, Generic[App]):
    """One thread per request, at most `threads` at once; a connection beyond them is answered 503 at once."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type, app: App, threads: int) -> None:
        super().__init__(address, handler)
        self.app = app
        self.threads = threads
        self._slots = threading.BoundedSemaphore(threads)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._busy(request)
            return
        threading.Thread(target=self._serve, args=(request, client_address), daemon=True).start()

    def _busy(self, request: socket.socket) -> None:
        """503 without waiting: the accept loop never blocks, so slow clients cannot queue the others."""
        log.warning("all %d workers busy: 503", self.threads)
        try:
            request.setblocking(False)
            with contextlib.suppress(OSError):  # whatever already arrived is read, so closing does not reset
                for _ in range(4):  # the connection before the client reads the answer (at most 256 KiB)
                    if not request.recv(65536):
                        break
            request.send(BUSY_RESPONSE)  # a few hundred bytes into an empty send buffer: never blocks
        except OSError:
            pass
        self.shutdown_request(request)

    def _serve(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()


class DeadlineReader(io.RawIOBase):
    """A socket's reads, all within one deadline: each read may wait only for the time that is left."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive within the deadline")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)
