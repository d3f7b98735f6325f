"""Settings of the HTTP gateway (`python -m gateway`) and of the approval links and webhook the worker sends."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from config.env import http_url, integer, port, var
from models.errors import ConfigError

MIN_LINK_SECRET_CHARS = 32
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway listens, whom it lets in, and how approval links are signed and announced."""

    host: str = var("GATEWAY_HOST", "127.0.0.1")
    port: int = var("GATEWAY_PORT", 8088, port)
    tokens_file: str = var("GATEWAY_TOKENS", "")
    """TOML file of accepted bearer tokens (SHA-256 digests, identity, roles); the gateway refuses to start without it."""
    link_secret: str = var("APPROVAL_LINK_SECRET", "", repr=False)
    """HMAC key of approval links; the worker that signs them and every gateway that checks them share it."""
    public_url: str = var("GATEWAY_PUBLIC_URL", "", http_url)
    """Base URL people reach the gateway at; approval links start with it."""
    webhook_url: str = var("APPROVAL_WEBHOOK_URL", "", http_url)
    """When set, each opened approval request is POSTed here (with one signed link per listed approver)."""
    max_body_bytes: int = var("GATEWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, integer(1024))
    """Largest request body; a larger one answers 413 before it is read (gateway/limits.py)."""
    max_header_bytes: int = var("GATEWAY_MAX_HEADER_BYTES", 16 * 1024, integer(1024))
    """Largest request line plus headers (uvicorn's `h11_max_incomplete_event_size`); more answers 400."""
    read_timeout_seconds: int = var("GATEWAY_READ_TIMEOUT_SECONDS", 10, integer(1))
    """A request's headers and body must all arrive within this long (gateway/protocol.py); else it is closed."""
    keep_alive_seconds: int = var("GATEWAY_KEEP_ALIVE_SECONDS", 5, integer(1))
    """An idle connection is closed after this long (uvicorn's `timeout_keep_alive`; the read timeout, when shorter, first)."""
    max_connections: int = var("GATEWAY_MAX_CONNECTIONS", 512, integer(1))
    """Open connections (and requests in progress) at once; a request beyond them answers 503 (`limit_concurrency`)."""
    followers_per_run: int = var("GATEWAY_FOLLOWERS_PER_RUN", 100, integer(1))
    """Followers of one run's events one gateway process serves at once (they share one reader); more: 429."""
    followers_per_token: int = var("GATEWAY_FOLLOWERS_PER_TOKEN", 20, integer(1))
    """Event streams one token may hold open on one gateway process, across runs; more: 429."""
    id_secret: str = var("GATEWAY_ID_SECRET", "", repr=False)
    """HMAC key of the workflow ids the gateway derives from Idempotency-Keys (default: derived from
    APPROVAL_LINK_SECRET); every gateway replica shares it, so the same key finds the same run."""

    @property
    def workflow_id_key(self) -> bytes:
        """The key gateway-made workflow ids are keyed with; empty when neither secret is set."""
        if self.id_secret:
            return self.id_secret.encode()
        if self.link_secret:  # a key of its own, derived, so ids never reveal anything about link signatures
            return hmac.new(
                self.link_secret.encode(), b"durable-agents gateway workflow ids v1", hashlib.sha256
            ).digest()
        return b""


def check_gateway(settings: GatewaySettings) -> GatewaySettings:
    """Refuse combinations that cannot work: a webhook without signed links, or a short secret."""
    for name, secret in (("APPROVAL_LINK_SECRET", settings.link_secret), ("GATEWAY_ID_SECRET", settings.id_secret)):
        if secret and len(secret) < MIN_LINK_SECRET_CHARS:
            raise ConfigError(f"{name} must be at least {MIN_LINK_SECRET_CHARS} characters (e.g. openssl rand -hex 32)")
    if settings.webhook_url and not (settings.link_secret and settings.public_url):
        missing = "APPROVAL_LINK_SECRET" if not settings.link_secret else "GATEWAY_PUBLIC_URL"
        raise ConfigError(f"APPROVAL_WEBHOOK_URL is set but {missing} is not: the webhook sends signed gateway links")
    return settings
