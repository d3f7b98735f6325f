"""Which model, provider client (or engine) and agent profile a request means, checked once for every activity."""

from __future__ import annotations

from typing import TypeVar

from activities.providers.errors import config_error
from tools.registry import AgentProfile, Registry

T = TypeVar("T")


def route(
    *, model: str | None, default_model: str, by_provider: dict[str, T], kind: str, registry: Registry, agent: str
) -> tuple[str, T, AgentProfile]:
    """The full `provider:model`, the entry for its provider, and the agent; unknown ones are configuration errors."""
    model = model or default_model
    provider = model.split(":", 1)[0]
    entry = by_provider.get(provider)
    if entry is None:
        raise config_error(f"this worker has no {kind} for {provider!r} models (it has: {', '.join(by_provider)})")
    try:
        profile = registry.agent(agent)
    except KeyError as exc:
        raise config_error(str(exc.args[0])) from None
    return model, entry, profile
