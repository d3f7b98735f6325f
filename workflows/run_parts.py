"""What every agent run's lifecycle hands around: its checked input, what the prelude established, how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from models.agents import PinnedAgents
    from models.conversation import Conversation
    from models.errors import InvalidInput
    from models.history import HistoryLimits
    from models.run import AgentRunInput, RunStatus
    from tools.registry import Registry
    from workflows.carry import RunCarry

M = TypeVar("M", bound=BaseModel)


def parse_input(raw: Any, model: type[M]) -> M:
    """Validate a workflow's raw JSON input; every problem is named by its field path."""
    if raw is None:
        raise InvalidInput('an input object is required, e.g. {"prompt": "..."}')
    if not isinstance(raw, dict):
        raise InvalidInput(f"expected a JSON object, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(map(str, err["loc"])) or "input"
            msg = err["msg"].replace("Extra inputs are not permitted", "unknown field")
            problems.append(f"{where}: {msg}")
        raise InvalidInput("; ".join(problems)) from None


@dataclass
class RunStart:
    """What the prelude established: the checked input, the run's trace, its limits, what an earlier generation carried."""

    raw: Any
    """The input as given; continue-as-new hands it to the next generation unchanged."""
    request: AgentRunInput
    """The checked input, of the workflow's own input model."""
    trace_id: str
    limits: HistoryLimits
    resumed: RunCarry | None
    pinned: PinnedAgents
    """The agents this run pinned at start (carried across continue-as-new)."""
    registry: Registry
    """The pinned agents and their tools, metadata only: what the workflow checks calls against."""

    @property
    def generation(self) -> int:
        """1 for a run's first generation, then 2, 3, ... after each continue-as-new."""
        return self.resumed.generation if self.resumed else 1


@dataclass
class RunEnd:
    """How the workflow's own part ended, and what the archive records of it."""

    status: RunStatus
    output: Any
    final_answer: Any = None
    plan: Any = None
    specialist_results: Any = None
    conversations: dict[str, Conversation] = field(default_factory=dict)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    """Handoffs inside black boxes (pattern A), in the order they were reported."""
    limit: str | None = None
    """The spend limit across runs that ended the run, if one did."""
