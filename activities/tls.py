"""One TLS context for every HTTP client the worker makes: the model providers' and the webhooks'.

httpx builds a context per client by default, loading certifi's bundle each time: about 30 ms of CPU per client
on this machine, paid at every worker start (one client per provider) and at every webhook POST (a client per
call). A context is safe to share between clients and threads, and the CA bundle does not change while a worker
runs, so it is built once, with httpx's own defaults (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR where set).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The worker's one verifying TLS context, as `httpx.AsyncClient()` would build it."""
    return httpx.create_ssl_context()
