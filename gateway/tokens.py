"""Bearer tokens from the GATEWAY_TOKENS file: SHA-256 digests, each with an identity (its table's name) and roles.

```toml
[tokens.alice]
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
roles = ["starter", "approver"]
tenant = "acme"          # optional: without it the token belongs to the tenant "default"
```

Roles: `starter` starts and cancels runs, `approver` decides requests, `admin` sees every tenant's runs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from models.errors import ConfigError
from models.search_attributes import TENANT_NAME

ROLES = frozenset({"starter", "approver", "admin"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
DEFAULT_TENANT = "default"
"""The tenant of tokens that name none, and of runs that record none (started with the CLI or the SDK)."""


@dataclass(frozen=True)
class Caller:
    """Who a valid token says the caller is, and what it may do (every caller may read)."""

    identity: str
    roles: frozenset[str]
    tenant: str = DEFAULT_TENANT

    def may(self, role: str) -> bool:
        """Whether the token carries `role`."""
        return role in self.roles

    def sees(self, tenant: str) -> bool:
        """Whether runs of `tenant` exist for this caller: its own tenant's, or every tenant's for an admin."""
        return self.may("admin") or tenant == self.tenant


@dataclass(frozen=True)
class TokenBook:
    """The accepted tokens, by digest; a lookup compares against every entry in constant time."""

    entries: tuple[tuple[str, Caller], ...]

    @property
    def tenants(self) -> frozenset[str]:
        """Every tenant some token belongs to."""
        return frozenset(caller.tenant for _, caller in self.entries)

    def authenticate(self, token: str) -> Caller | None:
        """The caller `token` belongs to, or None; never short-circuits, so timing tells nothing."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found: Caller | None = None
        for known, caller in self.entries:
            if hmac.compare_digest(known, digest) and found is None:
                found = caller
        return found


def load_tokens(path: str) -> TokenBook:
    """Read and check the tokens file; ConfigError names the file and the entry that is wrong."""
    if not path:
        raise ConfigError("GATEWAY_TOKENS is not set: name a TOML file of accepted tokens ([tokens.<identity>])")
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"GATEWAY_TOKENS file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"GATEWAY_TOKENS file {path} is not valid TOML: {exc}") from None
    tokens = data.get("tokens")
    if not isinstance(tokens, dict) or not tokens:
        raise ConfigError(f"GATEWAY_TOKENS file {path} has no [tokens.<identity>] tables")
    entries = []
    for identity, entry in tokens.items():
        where = f"GATEWAY_TOKENS file {path}, [tokens.{identity}]"
        if not isinstance(entry, dict) or set(entry) - {"sha256", "roles", "tenant"}:
            raise ConfigError(f"{where}: only the keys sha256, roles and tenant are allowed")
        digest = str(entry.get("sha256", "")).lower()
        if not _HEX64.fullmatch(digest):
            raise ConfigError(f"{where}: sha256 must be 64 hex digits (printf %s TOKEN | sha256sum)")
        roles = entry.get("roles", [])
        if not isinstance(roles, list) or not set(roles) <= ROLES:
            raise ConfigError(f"{where}: roles must be a list of {', '.join(sorted(ROLES))}")
        tenant = entry.get("tenant", DEFAULT_TENANT)
        if not isinstance(tenant, str) or not TENANT_NAME.fullmatch(tenant):
            raise ConfigError(f"{where}: tenant must be 1-64 letters, digits, '.', '_' or '-', starting with one")
        entries.append((digest, Caller(identity=identity, roles=frozenset(roles), tenant=tenant)))
    digests = [d for d, _ in entries]
    if len(set(digests)) != len(digests):
        raise ConfigError(f"GATEWAY_TOKENS file {path}: two identities share one token digest")
    return TokenBook(tuple(entries))
