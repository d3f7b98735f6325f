"""Handoffs in the Agents SDK engine: the pinned targets as the SDK's native handoffs (`Agent(handoffs=[...])`).

Each source agent's `handoff_context` becomes the handoff's `input_filter`: `full` passes everything on,
`summary` is the SDK's own `nest_handoff_history` (the transcript so far folded into one message), `none`
leaves only the original request. The filter also journals the next agent's input with the new active agent,
so a crash right after a handoff resumes as the agent handed to, with exactly the input it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents import Agent, Handoff, HandoffInputData, ItemHelpers, RunContextWrapper, ToolErrorFormatterArgs, handoff
from agents.handoffs import nest_handoff_history
from pydantic import BaseModel

from activities.black_box.handoffs import record_handoff, refusal, target_of
from activities.black_box.progress import AgentProgress
from tools.pinning import TRANSFER_PREFIX
from tools.registry import AgentProfile


class HandoffReason(BaseModel):
    """What the model passes with a `transfer_to_<agent>` call."""

    reason: str = ""


JournalReset = Callable[[list[Any]], Any]
"""Replaces the journal's items with the next agent's input and saves them (an awaitable)."""


def plain(item: Any) -> Any:
    """An input item as JSON-ready data."""
    return item.model_dump(mode="json", exclude_unset=True) if hasattr(item, "model_dump") else item


def next_input(data: HandoffInputData) -> list[Any]:
    """The input the SDK gives the next agent after the filter: the history, the earlier items, this turn's."""
    given = data.input_history
    history = ItemHelpers.input_to_new_input_list(given if isinstance(given, str) else list(given))
    turn = data.input_items if data.input_items is not None else data.new_items
    return [plain(i) for i in history] + [plain(i.to_input_item()) for i in (*data.pre_handoff_items, *turn)]


def context_filter(source: AgentProfile, prompt: str, reset: JournalReset | None) -> Callable[[HandoffInputData], Any]:
    """The `input_filter` that gives the next agent what `source.handoff_context` promises."""

    async def apply(data: HandoffInputData) -> HandoffInputData:
        if source.handoff_context == "summary":
            data = nest_handoff_history(data)
        elif source.handoff_context == "none":
            data = data.clone(input_history=prompt, pre_handoff_items=(), new_items=(), input_items=None)
        if reset is not None:
            await reset(next_input(data))
        return data

    return apply


def native_handoff(
    source: AgentProfile,
    target: AgentProfile,
    sdk_target: Agent[Any],
    target_model: str,
    progress: AgentProgress,
    prompt: str,
    reset: JournalReset | None,
) -> Handoff[Any, Any]:
    """One SDK handoff from `source` to `target`, named `transfer_to_<target>` as in the Claude engine."""

    async def on_handoff(ctx: RunContextWrapper[Any], given: HandoffReason) -> None:
        record_handoff(progress, source, target.name, given.reason or "no reason given")
        progress.model = target_model  # what the next agent's calls are priced at

    return handoff(
        sdk_target,
        tool_name_override=f"{TRANSFER_PREFIX}{target.name}",
        tool_description_override=f"Hand the conversation over to agent {target.name!r}: {target.description}",
        on_handoff=on_handoff,
        input_type=HandoffReason,
        input_filter=context_filter(source, prompt, reset),
    )


def missing_tool_message(
    profiles: dict[str, AgentProfile],
    progress: AgentProgress,
    unreachable: dict[str, str],
    journal: Callable[[str, str], Any] | None,
) -> Callable[[ToolErrorFormatterArgs[Any]], Any]:
    """`RunConfig.tool_error_formatter`: a call to a tool or handoff the agent does not have is an error the model
    reads (`tool_not_found_behavior="return_error_to_model"`), naming the handoffs it may make; `journal`
    (call id, text) records it like any tool output, so a resumed attempt does not ask for it again."""

    async def message(args: ToolErrorFormatterArgs[Any]) -> str | None:
        if args.kind != "tool_not_found":
            return None
        text = _missing(args.tool_name, profiles.get(progress.speaker), progress.speaker, unreachable)
        if journal is not None:
            await journal(args.call_id, text)
        return text

    return message


def _missing(tool: str, source: AgentProfile | None, speaker: str, unreachable: dict[str, str]) -> str:
    target = target_of(tool)
    if target is None or source is None:
        return f"Error: tool {tool!r} is not available to agent {speaker!r}."
    if target in unreachable and refusal(source, target) is None:
        return unreachable[target]
    return refusal(source, target) or f"Error: agent {target!r} was not pinned for this black box."
