"""The OpenAI Agents SDK peer for bench/peers.py: one agent, one calculator tool, with and without Temporal.

Runs only in bench/.venv-peers (temporalio-openai-agents 1.1.0, openai-agents 0.22.x), never in the product's
venv. Durable: `OpenAIAgentsPlugin` (every model call an activity) and the calculator as `activity_as_tool`,
as the integration's README shows. Floor: the same agent and `Runner.run` with a plain `function_tool`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from agents import Agent, Runner, function_tool

MODEL = "gpt-5.5"
INSTRUCTIONS = "Call the calculator as the user asks, then answer."


def add(expression: str) -> str:
    """`a + b` -> its sum: the calculator both loops call."""
    left, right = expression.split("+")
    return str(int(left) + int(right))


@activity.defn(name="calculator")
async def calculator(expression: str) -> str:
    """Evaluate a sum like `2 + 3`."""
    return add(expression)


@workflow.defn(name="PeerOpenAIAgentsWorkflow")
class PeerOpenAIAgentsWorkflow:
    """Runner.run inside a workflow: the model calls go through the plugin's model activity."""

    @workflow.run
    async def run(self, prompt: str, max_turns: int) -> str:
        from temporalio.openai_agents import workflow as oa_workflow

        tool = oa_workflow.activity_as_tool(calculator, start_to_close_timeout=timedelta(seconds=10))
        agent = Agent(name="bench", instructions=INSTRUCTIONS, model=MODEL, tools=[tool])
        result = await Runner.run(agent, prompt, max_turns=max_turns)
        return str(result.final_output)


WORKFLOW = PeerOpenAIAgentsWorkflow


async def plain_run(prompt: str, max_turns: int) -> str:
    """The same agent loop with no Temporal: the floor."""

    @function_tool(name_override="calculator")
    def calculator_tool(expression: str) -> str:
        """Evaluate a sum like `2 + 3`."""
        return add(expression)

    agent = Agent(name="bench", instructions=INSTRUCTIONS, model=MODEL, tools=[calculator_tool])
    result = await Runner.run(agent, prompt, max_turns=max_turns)
    return str(result.final_output)


async def connect(address: str):
    """A client with the integration's plugin, its default model parameters but a 60 s model timeout."""
    from temporalio.client import Client
    from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin

    plugin = OpenAIAgentsPlugin(model_params=ModelActivityParameters(start_to_close_timeout=timedelta(seconds=60)))
    return await Client.connect(address, plugins=[plugin])


def worker(client, task_queue: str):
    """The worker the integration documents: the plugin (from the client) adds the model activity."""
    from temporalio.worker import Worker

    return Worker(client, task_queue=task_queue, workflows=[PeerOpenAIAgentsWorkflow], activities=[calculator])
