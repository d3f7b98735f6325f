"""An Agents SDK run's turn-level resume: its input items journaled as they grow, and the run hooks that feed them.

Where the SDK forces a difference from the Claude loop: its conversation is its own list of input items (reasoning
items and all), so that list is what is checkpointed (activities/black_box/checkpoint.py `save(items=...)`), not a
`Conversation`.
"""

from __future__ import annotations

from typing import Any

from agents import RunHooks

from activities.black_box.checkpoint import Checkpoints
from activities.black_box.ledger import AgentLedger
from activities.black_box.openai_breakers import AgentsSdkBreakers
from activities.black_box.openai_output import Corrections


def plain(item: Any) -> Any:
    """An input item as JSON-ready data."""
    return item.model_dump(mode="json", exclude_unset=True) if hasattr(item, "model_dump") else item


class Journal:
    """The run's input items as they grow (prompt, each reply's items, each tool output), saved after each.

    A retried attempt starts `Runner.run` from these items instead of the prompt: replies already paid for
    are not asked again, tools already run are not run again.
    """

    def __init__(
        self, items: list[Any], ledger: AgentLedger, checkpoints: Checkpoints | None, corrections: Corrections
    ) -> None:
        self.items = items
        self._ledger = ledger
        self._checkpoints = checkpoints
        self._corrections = corrections

    @property
    def kept(self) -> bool:
        """Whether the items are checkpointed (without `Checkpoints` a retry starts from the prompt)."""
        return self._checkpoints is not None

    async def add(self, items: list[Any]) -> None:
        self.items.extend(items)
        await self._save()

    async def replace(self, items: list[Any]) -> None:
        """After a handoff or a correction: the next input is the journal from now on (saved with the active agent)."""
        self.items = [plain(i) for i in items]
        await self._save()

    async def output(self, call_id: str, text: str) -> None:
        """A tool output the SDK made itself (a refused handoff, a tool the agent lacks)."""
        await self.add([{"type": "function_call_output", "call_id": call_id, "output": text}])

    async def _save(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.save(self._ledger, items=self.items, corrections=self._corrections.count)


class LedgerHooks(RunHooks[Any]):
    """Counts each inference as a turn, heartbeats it, journals its items, and checks it makes progress.

    Each tool output is journaled as the model is shown it (after the output guardrail marked or withheld it).
    """

    def __init__(self, ledger: AgentLedger, breakers: AgentsSdkBreakers, journal: Journal) -> None:
        self._ledger = ledger
        self._breakers = breakers
        self._journal = journal

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, input_items: Any) -> None:
        self._breakers.before_inference()

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        usage = response.usage
        calls = [getattr(item, "name", "") for item in response.output if getattr(item, "type", "") == "function_call"]
        self._ledger.record_llm(
            usage.input_tokens, usage.output_tokens, f"asked for {', '.join(calls)}" if calls else "answered"
        )
        if self._journal.kept:
            await self._journal.add([plain(i) for i in response.to_input_items()])
        self._breakers.after_reply(agent.name, response)  # the reply is paid for and journaled; its calls have not run

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: object) -> None:
        if self._journal.kept:
            call_id = getattr(context, "tool_call_id", "call")
            await self._journal.add([{"type": "function_call_output", "call_id": call_id, "output": str(result)}])
