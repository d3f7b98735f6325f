"""Provider errors, classified once: what Temporal should retry, and when.

A provider says what went wrong twice: with the HTTP status and with an error type in the body
(Anthropic `{"error": {"type": "overloaded_error"}}`, OpenAI `{"error": {"code": ..., "type": ...}}`,
or the `code` of a Responses stream's `error` / `response.failed` event). A stream that already
answered HTTP 200 can still fail (the error arrives as an event), so its status says nothing: the
error type decides whenever it is one we know, the status only when it is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from temporalio.exceptions import ApplicationError

RETRYABLE_STATUS = {408, 409, 429}

RETRIED_TYPES = frozenset(
    {
        # Anthropic (https://docs.anthropic.com/en/api/errors): overloaded (529), server error (500),
        # rate limited (429), timed out (504).
        "overloaded_error",
        "api_error",
        "rate_limit_error",
        "timeout_error",
        # OpenAI: HTTP error codes/types and the Responses stream's `error` / `response.failed` codes.
        "server_error",
        "rate_limit_exceeded",
        "vector_store_timeout",
    }
)
"""Error types that describe the provider's trouble, not the request's: another attempt may succeed."""

REFUSED_TYPES = frozenset(
    {
        # Anthropic: the request, the key, the account or the model is wrong; sending it again changes nothing.
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "billing_error",
        "not_found_error",
        "request_too_large",
        # OpenAI: the same for its HTTP errors (`insufficient_quota` comes as a 429 but waiting does not pay it)...
        "invalid_api_key",
        "insufficient_quota",
        "model_not_found",
        "context_length_exceeded",
        # ... and the codes a Responses stream fails with when the request or its content is refused.
        "invalid_prompt",
        "data_residency_mismatch",
        "bio_policy",
        "misalignment_policy_violation",
        "invalid_image",
        "invalid_image_format",
        "invalid_base64_image",
        "invalid_image_url",
        "image_too_large",
        "image_too_small",
        "image_parse_error",
        "image_content_policy_violation",
        "invalid_image_mode",
        "image_file_too_large",
        "unsupported_image_media_type",
        "empty_image_file",
        "failed_to_download_image",
        "image_file_not_found",
    }
)
"""Error types that describe a request the provider will refuse however often it is sent."""

_TRY_AGAIN_IN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
"""OpenAI's rate-limit messages carry their wait in words: "Please try again in 1.5s" (or "in 20ms")."""


def is_retryable_status(status: int) -> bool:
    """408/409/429 and every 5xx (529 'overloaded' included) may succeed later; other 4xx never will."""
    return status in RETRYABLE_STATUS or status >= 500


def classify(kinds: Iterable[str | None], status: int) -> tuple[str | None, bool]:
    """The error type that decides (the first one we know, else the first given) and whether to retry.

    The one retry policy for provider errors. A known type decides (`RETRIED_TYPES`, `REFUSED_TYPES`);
    without one, an HTTP error status decides (`is_retryable_status`). An unknown type on a stream that
    answered HTTP 200 is retried: the provider accepted and validated the request before it began the
    stream (a bad request, key or model is refused with a 4xx up front), so what breaks a stream later is
    almost always the provider's own trouble; the retry policy's attempt limit bounds the cost of being
    wrong, while refusing a passing failure would fail the whole run.
    """
    given = [k for k in kinds if k]
    known = next((k for k in given if k in RETRIED_TYPES or k in REFUSED_TYPES), None)
    if known is not None:
        return known, known in RETRIED_TYPES
    kind = given[0] if given else None
    return kind, status == 200 or is_retryable_status(status)


def error_kinds(body: object) -> list[str]:
    """The provider's error code and type in an error body, most specific first.

    Anthropic's body is `{"type": "error", "error": {"type": ...}}`; OpenAI's `{"error": {"code", "type"}}`,
    which its SDK hands over as the inner object; a Responses `error` event has `code` at the top.
    """
    inner = body.get("error") if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping) else body
    if not isinstance(inner, Mapping):
        return []
    return [v for v in (inner.get("code"), inner.get("type")) if isinstance(v, str) and v]


def error_message(body: object, fallback: str) -> str:
    """The provider's own message in an error body (see `error_kinds`), else `fallback`."""
    inner = body.get("error") if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping) else body
    message = inner.get("message") if isinstance(inner, Mapping) else None
    return str(message) if message else fallback


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


def retry_hint(headers: Mapping[str, str] | None, message: str) -> timedelta | None:
    """The provider's requested wait: its retry-after headers, else the wait its message names."""
    if (delay := retry_after(headers)) is not None:
        return delay
    match = _TRY_AGAIN_IN.search(message)
    if match is None:
        return None
    amount = float(match.group(1))
    return timedelta(milliseconds=amount) if match.group(2).lower() == "ms" else timedelta(seconds=amount)


def http_error(
    provider: str,
    status: int,
    message: str,
    headers: Mapping[str, str] | None,
    kinds: Iterable[str | None] = (),
) -> ApplicationError:
    """An ApplicationError for a provider's error answer, retryable per `classify`.

    `status` 200 is an error that came inside a stream after its 200 (type `<Provider>StreamError`); any
    other status an error response (type `<Provider>HttpError<status>`). `kinds`: the error's code and
    type from its body (`error_kinds`).
    """
    kind, retryable = classify(kinds, status)
    notes = [n for n in (kind, None if retryable else "not retried: fix the request or the configuration") if n]
    suffix = f" ({'; '.join(notes)})" if notes else ""
    if status == 200:
        text, error_type = f"{provider} API stream failed after HTTP 200: {message}", "StreamError"
    else:
        text, error_type = f"{provider} API returned HTTP {status}: {message}", f"HttpError{status}"
    return ApplicationError(
        text + suffix,
        type=provider.capitalize() + error_type,
        non_retryable=not retryable,
        next_retry_delay=retry_hint(headers, message) if retryable else None,
    )


def stream_error(
    provider: str, kinds: Iterable[str | None], message: str, headers: Mapping[str, str] | None
) -> ApplicationError:
    """An error event inside a stream that had answered HTTP 200: its type decides (`classify`)."""
    return http_error(provider, 200, message, headers, kinds)


def connection_error(provider: str, exc: Exception) -> ApplicationError:
    """Network trouble or a client-side timeout: always worth another attempt."""
    return ApplicationError(
        f"{provider} API unreachable: {type(exc).__name__}: {exc}", type=f"{provider.capitalize()}ConnectionError"
    )


def truncated_stream(provider: str, final_event: str) -> ApplicationError:
    """A stream that ended before its final event: the connection was cut mid-reply, worth another attempt."""
    return ApplicationError(
        f"{provider} API stream ended before {final_event}: the connection was cut mid-reply",
        type=f"{provider.capitalize()}ConnectionError",
    )


def config_error(message: str) -> ApplicationError:
    """A worker misconfiguration (missing key, unknown provider): retrying cannot help."""
    return ApplicationError(message, type="ProviderConfigError", non_retryable=True)
