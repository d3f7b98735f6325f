"""The agent a run is acting as: what the lifecycle resolves from the pinned registry and every loop runs with."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from tools.registry import AgentProfile


@dataclass(frozen=True)
class ActiveAgent:
    """An agent a loop can run as: its pinned profile, spec digest, model and the queue of its model calls."""

    profile: AgentProfile
    spec: str | None
    model: str | None
    llm_task_queue: str | None
