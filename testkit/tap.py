"""The tool tap: wraps every handler of a worker's registry, so the kit sees each tool call and can stand in for it.

Per run (workflow id) it records what each tool was called with and what it returned. A run given a
recording (a cassette, an archived run) gets recorded outputs instead of real execution:

- `serve="all"` (cassette replay): nothing runs; every call must match a recorded one, else a divergence;
- `serve="write"` (regression evals): read tools run; write tools never do, and a write call the recording
  lacks is a divergence.

A divergence goes back to the model as an error result (`ToolInputError`: never retried) and is kept here
for the report, naming the step: the n-th tool call of the run.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import activity

from models.errors import ToolInputError
from tools.registry import CallInfo, Handler, Registry, Tool

Serve = Literal["all", "write"]


@dataclass
class ToolCallRecord:
    """One tool call: what was asked, what came back, and whether it ran or was served from a recording."""

    tool: str
    arguments: dict[str, Any]
    output: str = ""
    is_error: bool = False
    served: Literal["live", "recorded", "divergence"] = "live"

    def describe(self) -> str:
        """`tool({"arg": ...})`, for messages and diffs."""
        return f"{self.tool}({json.dumps(self.arguments, sort_keys=True, ensure_ascii=False)})"


@dataclass
class _Plan:
    recorded: list[ToolCallRecord]
    serve: Serve
    used: set[int] = field(default_factory=set)


def arguments_of(args: Any) -> dict[str, Any]:
    """The arguments as the model sent them: a validated args model without its defaults, or the plain mapping."""
    if isinstance(args, BaseModel):
        dumped: dict[str, Any] = args.model_dump(mode="json", exclude_unset=True)
        return dumped
    return dict(args) if isinstance(args, dict) else {}


class ToolTap:
    """Records and (for runs with a recording) serves tool calls; one per kit, shared by its worker's activities."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, list[ToolCallRecord]] = {}
        self.divergences: dict[str, list[str]] = {}
        self._plans: dict[str, _Plan] = {}

    def wrap(self, registry: Registry) -> Registry:
        """Replace each runnable tool's handler in `registry` by one that goes through this tap."""
        for name, declared in list(registry.tools.items()):
            if declared.handler is not None:
                registry.tools[name] = replace(declared, handler=self._handler(declared, declared.handler))
        return registry

    def expect(self, workflow_id: str, recorded: list[ToolCallRecord], serve: Serve) -> None:
        """Serve run `workflow_id`'s tool calls from `recorded` (see the module's docstring)."""
        with self._lock:
            self._plans[workflow_id] = _Plan(list(recorded), serve)

    def _handler(self, declared: Tool, real: Handler) -> Handler:
        async def tapped(args: Any, deps: Any, info: CallInfo) -> str:
            run = (activity.info().workflow_id or "") if activity.in_activity() else ""
            call = ToolCallRecord(declared.name, arguments_of(args))
            with self._lock:
                self.calls.setdefault(run, []).append(call)
                step = len(self.calls[run])
                plan = self._plans.get(run)
            if plan is None or (plan.serve == "write" and declared.effect != "write"):
                try:
                    call.output = await real(args, deps, info)
                except ToolInputError as exc:
                    call.output, call.is_error = f"Error: {exc}", True
                    raise
                return call.output
            return self._serve(run, step, call, plan)

        return tapped

    def _serve(self, run: str, step: int, call: ToolCallRecord, plan: _Plan) -> str:
        """The recorded output of the first unused recorded call equal to `call`; else a divergence."""
        with self._lock:
            found = next(
                (i for i, r in enumerate(plan.recorded) if i not in plan.used and _same(r, call)),
                None,
            )
            if found is not None:
                plan.used.add(found)
                recorded = plan.recorded[found]
                call.output, call.is_error, call.served = recorded.output, recorded.is_error, "recorded"
            else:
                expected = next((r for i, r in enumerate(plan.recorded) if i not in plan.used), None)
                wanted = f"the recording has {expected.describe()} next" if expected else "the recording has no more"
                problem = f"step {step}: the agent called {call.describe()}; {wanted}"
                self.divergences.setdefault(run, []).append(problem)
                call.output, call.is_error, call.served = f"Error: {problem}", True, "divergence"
        if call.served == "divergence":
            raise ToolInputError(f"not executed while replaying a recording ({problem})")
        if call.is_error:
            raise ToolInputError(call.output.removeprefix("Error: "))
        return call.output


def _same(recorded: ToolCallRecord, call: ToolCallRecord) -> bool:
    return recorded.tool == call.tool and recorded.arguments == call.arguments
