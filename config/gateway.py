"""Settings of the HTTP gateway (`python -m gateway`) and of the approval links and webhook the worker sends."""

from __future__ import annotations

from dataclasses import dataclass

from config.env import http_url, integer, port, var
from models.errors import ConfigError

MIN_LINK_SECRET_CHARS = 32


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
    followers_per_run: int = var("GATEWAY_FOLLOWERS_PER_RUN", 100, integer(1))
    """Followers of one run's events one gateway process serves at once (they share one reader); more: 429."""
    followers_per_token: int = var("GATEWAY_FOLLOWERS_PER_TOKEN", 20, integer(1))
    """Event streams one token may hold open on one gateway process, across runs; more: 429."""

    @property
    def links_enabled(self) -> bool:
        """Whether approval links can be made and checked."""
        return bool(self.link_secret)


def check_gateway(settings: GatewaySettings) -> GatewaySettings:
    """Refuse combinations that cannot work: a webhook without signed links, or a short link secret."""
    if settings.link_secret and len(settings.link_secret) < MIN_LINK_SECRET_CHARS:
        raise ConfigError(
            f"APPROVAL_LINK_SECRET must be at least {MIN_LINK_SECRET_CHARS} characters (e.g. openssl rand -hex 32)"
        )
    if settings.webhook_url and not (settings.link_secret and settings.public_url):
        missing = "APPROVAL_LINK_SECRET" if not settings.link_secret else "GATEWAY_PUBLIC_URL"
        raise ConfigError(f"APPROVAL_WEBHOOK_URL is set but {missing} is not: the webhook sends signed gateway links")
    return settings
