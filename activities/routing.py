"""Which model and provider client (or engine) a request means, checked once for every activity."""

from __future__ import annotations

from typing import TypeVar

from activities.providers.errors import config_error

T = TypeVar("T")


def route(*, model: str | None, default_model: str, by_provider: dict[str, T], kind: str) -> tuple[str, T]:
    """The full `provider:model` and the entry for its provider; an unknown provider is a configuration error."""
    model = model or default_model
    provider = model.split(":", 1)[0]
    entry = by_provider.get(provider)
    if entry is None:
        raise config_error(f"this worker has no {kind} for {provider!r} models (it has: {', '.join(by_provider)})")
    return model, entry
