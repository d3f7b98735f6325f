"""Handoffs in the Agents SDK engine: the pinned targets as the SDK's native handoffs (`Agent(handoffs=[...])`).

What a switch may do and what the next agent is given are tools/handoffs.py's, as in every loop. Where the SDK
forces a difference: the handoff is its own (named `transfer_to_<agent>` as elsewhere), and the source agent's
`handoff_context` becomes the handoff's `input_filter`: `full` passes everything on, `summary` replaces the
history with `summary_opening`'s one message (built from the SDK's items), `none` leaves only the original
request. The filter also journals the next agent's input with the new active agent, so a crash right after a
handoff resumes as the agent handed to, with exactly the input it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents import Agent, Handoff, HandoffInputData, ItemHelpers, RunContextWrapper, ToolErrorFormatterArgs, handoff
from pydantic import BaseModel

from activities.black_box.handoffs import record_handoff
from activities.black_box.ledger import AgentLedger
from activities.black_box.openai_journal import plain
from activities.black_box.openai_output import Corrections
from models.conversation import Conversation, Message, TextBlock, ToolCall, ToolResultBlock, ToolUseBlock
from tools.handoffs import black_box_refusal, handoff_reason, summary_opening, target_of, work_so_far
from tools.pinning import TRANSFER_PREFIX
from tools.registry import AgentProfile


class HandoffReason(BaseModel):
    """What the model passes with a `transfer_to_<agent>` call."""

    reason: str = ""


JournalReset = Callable[[list[Any]], Any]
"""Replaces the journal's items with the next agent's input and saves them (an awaitable)."""


def next_input(data: HandoffInputData) -> list[Any]:
    """The input the SDK gives the next agent after the filter: the history, the earlier items, this turn's."""
    given = data.input_history
    history = ItemHelpers.input_to_new_input_list(given if isinstance(given, str) else list(given))
    turn = data.input_items if data.input_items is not None else data.new_items
    return [plain(i) for i in history] + [plain(i.to_input_item()) for i in (*data.pre_handoff_items, *turn)]


def conversation_of(items: list[Any]) -> Conversation:
    """The SDK's input items as a `Conversation`, as far as `work_so_far` reads it: text, calls and their outputs."""
    messages: list[Message] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            call = ToolCall.from_json(item.get("call_id", ""), item.get("name", ""), item.get("arguments"))
            block: Any = ToolUseBlock(id=call.id, name=call.name, arguments=call.arguments)
        elif item.get("type") == "function_call_output":
            block = ToolResultBlock(tool_use_id=item.get("call_id", ""), content=str(item.get("output", "")))
        elif item.get("role") in ("user", "assistant"):
            content = item.get("content")
            parts = content if isinstance(content, list) else [{"text": content}]
            block = TextBlock(text="".join(str(p.get("text") or "") for p in parts if isinstance(p, dict)))
        else:
            continue
        role = "assistant" if isinstance(block, ToolUseBlock) or item.get("role") == "assistant" else "user"
        messages.append(Message(role=role, content=[block]))
    return Conversation(messages=messages)


def context_filter(
    source: AgentProfile, prompt: str, reasons: dict[str, str], reset: JournalReset
) -> Callable[[HandoffInputData], Any]:
    """The `input_filter` that gives the next agent what `source.handoff_context` promises."""

    async def apply(data: HandoffInputData) -> HandoffInputData:
        if source.handoff_context != "full":
            opening = prompt
            if source.handoff_context == "summary":
                work, last_text = work_so_far(conversation_of(next_input(data)))
                opening = summary_opening(prompt, source.name, reasons.get("last", "no reason given"), work, last_text)
            data = data.clone(input_history=opening, pre_handoff_items=(), new_items=(), input_items=None)
        await reset(next_input(data))
        return data

    return apply


def native_handoff(
    source: AgentProfile,
    target: AgentProfile,
    sdk_target: Agent[Any],
    target_model: str,
    ledger: AgentLedger,
    prompt: str,
    reset: JournalReset,
    corrections: Corrections,
) -> Handoff[Any, Any]:
    """One SDK handoff from `source` to `target`, named `transfer_to_<target>` as in every loop."""
    reasons: dict[str, str] = {}  # the SDK calls `on_handoff` before the input filter: the summary names the reason

    async def on_handoff(ctx: RunContextWrapper[Any], given: HandoffReason) -> None:
        reasons["last"] = handoff_reason({"reason": given.reason})
        record_handoff(ledger, source, target.name, reasons["last"])
        ledger.model = target_model  # what the next agent's calls are priced at
        corrections.count = 0  # the next agent gets its own output corrections

    return handoff(
        sdk_target,
        tool_name_override=f"{TRANSFER_PREFIX}{target.name}",
        tool_description_override=f"Hand the conversation over to agent {target.name!r}: {target.description}",
        on_handoff=on_handoff,
        input_type=HandoffReason,
        input_filter=context_filter(source, prompt, reasons, reset),
    )


def missing_tool_message(
    profiles: dict[str, AgentProfile],
    models: dict[str, str],
    ledger: AgentLedger,
    journal: Callable[[str, str], Any],
) -> Callable[[ToolErrorFormatterArgs[Any]], Any]:
    """The refusal of a `transfer_to_<agent>` call the speaker was not offered (the SDK's `tool_not_found`), as
    tools/handoffs.py words it for every loop; `journal` (call id, text) records it like any tool output, so a
    resumed attempt does not ask for it again."""

    async def message(args: ToolErrorFormatterArgs[Any]) -> str:
        source, target = profiles.get(ledger.speaker), target_of(args.tool_name) or ""
        text = f"Error: tool {args.tool_name!r} is not available to agent {ledger.speaker!r}."
        if source is not None:
            pinned = target in profiles
            text = (
                black_box_refusal(source, target, pinned=pinned, target_model=models.get(target), engine="openai")
                or f"Error: agent {target!r} was not pinned for this black box."
            )
        await journal(args.call_id, text)
        return text

    return message
