"""`Runner.run`, or with streaming on `Runner.run_streamed`, whose text deltas go to the run's progress stream."""

from __future__ import annotations

from typing import Any

from agents import Agent, Runner, RunResult, RunResultStreaming
from openai.types.responses import ResponseTextDeltaEvent

from activities.progress_publisher import publish_text


async def run_agent(
    agent: Agent[Any], prompt: Any, *, streaming: bool, **options: Any
) -> RunResult | RunResultStreaming:
    """Run the agent to its final output; errors (max turns, provider errors) raise as `Runner.run` raises them."""
    if not streaming:
        return await Runner.run(agent, prompt, **options)
    result = Runner.run_streamed(agent, prompt, **options)
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            publish_text(event.data.delta)
    return result
