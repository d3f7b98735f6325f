"""Pinning agents: the `resolve_agents` local activity, and the store activities read pinned specs from.

A run resolves its agents once at start (a local activity, so the answer is a marker in its history and
a replay reads it back). Each spec is also written to the blob store under its digest, so `call_llm`,
`invoke_agent` and their retries on any worker read the spec the run pinned, not the worker's current one.
"""

from __future__ import annotations

import asyncio
import json

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers.errors import config_error
from models.agents import AgentSpec, PinnedAgents, ResolveAgentsRequest, spec_digest
from models.errors import BlobNotFound, InvalidInput
from payloads.blobs import BlobStore
from payloads.lru import Lru
from tools.pinning import black_box_handoff_problem, pin, profile_of, tool_of, transfer_tools
from tools.registry import AgentProfile, Registry, Tool

_SPEC_CACHE_ENTRIES = 256


def _object_name(digest: str) -> str:
    return f"agent-specs/{digest}.json"


class SpecStore:
    """Pinned specs by digest: in memory first, then the blob store (shared by every worker)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._cache: Lru[str, AgentSpec] = Lru(_SPEC_CACHE_ENTRIES)

    async def put(self, spec: AgentSpec) -> str:
        """Store a spec under its digest (idempotent); returns the digest."""
        digest = spec.digest()
        if self._cache.get(digest) is None:
            await asyncio.to_thread(self._blobs.put_object, _object_name(digest), spec.model_dump_json().encode())
            self._cache.put(digest, spec)
        return digest

    async def get(self, digest: str) -> AgentSpec:
        """The spec pinned under `digest`; a non-retryable error when no store holds it."""
        spec = self._cache.get(digest)
        if spec is not None:
            return spec
        try:
            data = await asyncio.to_thread(self._blobs.get_object, _object_name(digest))
            stored = json.loads(data)
            spec = AgentSpec.model_validate(stored)
        except (BlobNotFound, ValidationError, ValueError) as exc:
            raise ApplicationError(
                f"pinned agent spec {digest[:12]} cannot be read from the blob store: {exc}",
                type="PinnedSpecMissing",
                non_retryable=True,
            ) from None
        # Over the JSON as stored: a spec pinned by an older release still matches after fields were added.
        if spec_digest(stored) != digest:
            raise ApplicationError(
                f"pinned agent spec {digest[:12]} does not match its digest",
                type="PinnedSpecMissing",
                non_retryable=True,
            )
        self._cache.put(digest, spec)
        return spec


class AgentSpecActivities:
    """Resolves agents against this worker's registry (built-ins, agents file, tool modules, MCP servers)."""

    def __init__(
        self,
        registry: Registry,
        specs: SpecStore,
        *,
        llm_task_queues: dict[str, str] | None = None,
        default_model: str | None = None,
    ) -> None:
        self._registry = registry
        self._specs = specs
        self._llm_task_queues = dict(llm_task_queues or {})
        self._default_model = default_model

    @activity.defn(name="resolve_agents")
    async def resolve_agents(self, request: ResolveAgentsRequest) -> PinnedAgents:
        """Pin every agent the run's input names (an unknown one fails the run naming its field)."""
        try:
            pinned = pin(self._registry, request.agents, specialists=request.specialists)
        except InvalidInput as exc:
            raise ApplicationError(
                exc.message.removeprefix("invalid input: "), type="InvalidInput", non_retryable=True
            ) from None
        for ref in request.agents:
            if ref.black_box and (problem := black_box_handoff_problem(pinned, [ref.name])):
                raise ApplicationError(f"{ref.where}: {problem}", type="InvalidInput", non_retryable=True)
        for spec in pinned.specs.values():
            await self._specs.put(spec)
        return pinned.model_copy(
            update={"llm_task_queues": self._llm_task_queues, "default_model": self._default_model}
        )


class AgentResolver:
    """The agent an activity request means: the run's pinned spec when it names one, else the worker's own agent."""

    def __init__(self, registry: Registry, specs: SpecStore) -> None:
        self._registry = registry
        self._specs = specs

    async def resolve(
        self, name: str, digest: str | None, *, handoffs: bool = False
    ) -> tuple[AgentProfile, list[Tool]]:
        """The agent's profile and the tools the model is shown (metadata as pinned; with `handoffs`, its
        `transfer_to_<agent>` tools too)."""
        if digest is None:  # runs recorded before pinning: the built-in agents, as this worker declares them
            try:
                agent = self._registry.agent(name)
            except KeyError as exc:
                raise config_error(str(exc.args[0])) from None
            return agent, self._registry.tools_of(agent)
        spec = await self._specs.get(digest)
        tools = [tool_of(t) for t in spec.tools]
        return profile_of(spec), tools + transfer_tools(spec) if handoffs else tools
