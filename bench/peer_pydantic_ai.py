"""The pydantic-ai peer for bench/peers.py: one agent, one calculator tool, with and without Temporal.

Runs only in bench/.venv-peers (pydantic-ai-slim 2.68), never in the product's venv. Durable: the
`TemporalDurability()` capability (model requests and tool calls as activities) and `PydanticAIPlugin`, as
pydantic-ai's Temporal docs show. Floor: the same agent run outside a workflow, where the capability is
transparent.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic_ai import Agent
    from pydantic_ai.durable_exec.temporal import PydanticAIWorkflow, TemporalDurability
    from pydantic_ai.usage import UsageLimits

MODEL = "anthropic:claude-sonnet-5-5"

agent = Agent(
    MODEL,
    name="bench",
    instructions="Call the calculator as the user asks, then answer.",
    capabilities=[TemporalDurability()],
)


@agent.tool_plain(name="calculator")
def calculator(expression: str) -> str:
    """Evaluate a sum like `2 + 3`."""
    left, right = expression.split("+")
    return str(int(left) + int(right))


@workflow.defn(name="PeerPydanticAIWorkflow")
class PeerPydanticAIWorkflow(PydanticAIWorkflow):
    """agent.run inside a workflow."""

    __pydantic_ai_agents__ = (agent,)  # a Sequence, as PydanticAIPlugin expects

    @workflow.run
    async def run(self, prompt: str, max_turns: int) -> str:
        result = await agent.run(prompt, usage_limits=UsageLimits(request_limit=max_turns))
        return str(result.output)


WORKFLOW = PeerPydanticAIWorkflow


async def plain_run(prompt: str, max_turns: int) -> str:
    """The same agent outside a workflow (the capability is transparent there): the floor."""
    result = await agent.run(prompt, usage_limits=UsageLimits(request_limit=max_turns))
    return str(result.output)


async def connect(address: str):
    """A client with `PydanticAIPlugin` (its converter, sandbox passthroughs and failure types)."""
    from pydantic_ai.durable_exec.temporal import PydanticAIPlugin
    from temporalio.client import Client

    return await Client.connect(address, plugins=[PydanticAIPlugin()])


def worker(client, task_queue: str):
    """The workflow; the plugin registers the agent's activities."""
    from temporalio.worker import Worker

    return Worker(client, task_queue=task_queue, workflows=[PeerPydanticAIWorkflow])
