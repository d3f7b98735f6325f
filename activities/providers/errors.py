"""Provider errors, classified once: what Temporal should retry, and when."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from temporalio.exceptions import ApplicationError

RETRYABLE_STATUS = {408, 409, 429}


def is_retryable_status(status: int) -> bool:
    """408/409/429 and every 5xx (529 'overloaded' included) may succeed later; other 4xx never will."""
    return status in RETRYABLE_STATUS or status >= 500


def retry_after(headers: Mapping[str, str] | None) -> timedelta | None:
    """The server's requested wait, from `retry-after-ms`, `retry-after` seconds or an HTTP date."""
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return timedelta(milliseconds=max(0.0, float(ms)))
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return timedelta(seconds=max(0.0, float(raw)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(timedelta(0), when - datetime.now(UTC))


def http_error(provider: str, status: int, message: str, headers: Mapping[str, str] | None) -> ApplicationError:
    """An ApplicationError for an HTTP failure, retryable per `is_retryable_status`."""
    retryable = is_retryable_status(status)
    hint = "" if retryable else " (not retried: fix the request or the configuration)"
    return ApplicationError(
        f"{provider} API returned HTTP {status}: {message}{hint}",
        type=f"{provider.capitalize()}HttpError{status}",
        non_retryable=not retryable,
        next_retry_delay=retry_after(headers) if retryable else None,
    )


def connection_error(provider: str, exc: Exception) -> ApplicationError:
    """Network trouble or a client-side timeout: always worth another attempt."""
    return ApplicationError(
        f"{provider} API unreachable: {type(exc).__name__}: {exc}", type=f"{provider.capitalize()}ConnectionError"
    )


def config_error(message: str) -> ApplicationError:
    """A worker misconfiguration (missing key, unknown provider): retrying cannot help."""
    return ApplicationError(message, type="ProviderConfigError", non_retryable=True)
