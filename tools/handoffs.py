"""Handoffs, decided once for the pattern-B loop and both black-box engines: which switch is refused (and the words
the model reads), and what a `summary` handoff gives the next agent.

Pure and deterministic: the workflow replays it, the engines call it inside their activities.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.conversation import Conversation, ToolCall, ToolResultBlock, ToolUseBlock, describe_call, shortened
from tools.pinning import TRANSFER_PREFIX
from tools.registry import AgentProfile

WORK_SHOWN = 10
"""A summary handoff lists the last this many entries of the work so far."""

ENGINES = {"anthropic": "Claude", "openai": "the OpenAI Agents SDK"}
"""What each black-box engine is called when a handoff to another provider's agent is refused."""


def target_of(tool_name: str) -> str | None:
    """The agent a `transfer_to_<agent>` call names, or None for any other tool."""
    return tool_name.removeprefix(TRANSFER_PREFIX) if tool_name.startswith(TRANSFER_PREFIX) else None


def refusal(source: AgentProfile, target: str) -> str | None:
    """Why `source` may not hand off to `target` (the model reads it), or None when it may."""
    if target in source.handoffs:
        return None
    offered = ", ".join(source.handoffs) or "none"
    return f"Error: agent {source.name!r} cannot hand off to {target!r} (it can hand off to: {offered})."


def black_box_refusal(
    source: AgentProfile, target: str, *, pinned: bool, target_model: str | None, engine: str
) -> str | None:
    """`refusal`, and inside a black box on `engine` (`anthropic`, `openai`): a target the run did not pin for
    it, or one on another provider (a black box runs on one SDK; a loop calls each agent's provider itself)."""
    if (why := refusal(source, target)) is not None:
        return why
    if not pinned:
        return f"Error: agent {target!r} was not pinned for this black box."
    if target_model is not None and target_model.split(":", 1)[0] != engine:
        return (
            f"Error: agent {target!r} runs on {target_model!r}; this black box runs on {ENGINES.get(engine, engine)} "
            "and cannot hand off to another provider's agent."
        )
    return None


def summary_opening(prompt: str, source: str, reason: str, work: Sequence[str], last_text: str) -> str:
    """What a `summary` handoff gives the next agent: the request, why it was handed over, the last entries of the
    work so far and the last thing the previous agent said."""
    done = "; ".join(work[-WORK_SHOWN:]) or "nothing yet"
    return f"{prompt}\n\n(Handed over by agent {source}: {reason}. Work so far: {done}. Its last message: {last_text or '(none)'})"


def work_so_far(conversation: Conversation) -> tuple[list[str], str]:
    """A conversation's tool calls with their results (`calc(x=1) -> ok: 2`, handoffs left out), and the last
    text the model wrote: what `summary_opening` is given inside a black box."""
    done: list[str] = []
    calls: dict[str, ToolUseBlock] = {}
    last_text = ""
    for message in conversation.messages:
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                calls[block.id] = block
            elif isinstance(block, ToolResultBlock) and block.tool_use_id in calls:
                call = calls[block.tool_use_id]
                if target_of(call.name) is None:
                    shown = describe_call(ToolCall(id=call.id, name=call.name, arguments=call.arguments))
                    done.append(f"{shown} -> {'error' if block.is_error else 'ok'}: {shortened(block.content)}")
            elif message.role == "assistant" and block.type == "text" and block.text.strip():
                last_text = block.text
    return done, last_text


def handoff_reason(arguments: dict[str, object]) -> str:
    """The reason a `transfer_to_<agent>` call gives, as every loop records it."""
    return str(arguments.get("reason") or "no reason given")


def transferred(target: str) -> str:
    """The result a handoff call gets when the conversation was handed on."""
    return f"Transferred to {target}."


def handed_on(target: str) -> str:
    """The result of a call a reply asked for after its handoff: not run, the conversation has moved on."""
    return f"Not run: the conversation was handed to {target}."
