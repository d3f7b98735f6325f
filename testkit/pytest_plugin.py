"""The `agent_kit` fixture: load it with `-p testkit.pytest_plugin`, or import the fixture into your conftest.py.

Override the `agent_kit_options` fixture to point the kit at your agents file and tool modules (the keyword
arguments of `AgentKit`). The test fails when a scripted model step was never requested, or when a run does not replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from testkit.kit import AgentKit


@pytest.fixture
def agent_kit_options() -> dict[str, Any]:
    """`AgentKit`'s keyword arguments (`agents_file`, `tool_modules`, `server`, `model`, `env` ...); override it."""
    return {}


@pytest_asyncio.fixture
async def agent_kit(agent_kit_options: dict[str, Any]) -> AsyncIterator[AgentKit]:
    """A started kit for one test; afterwards every scripted step must have been requested, and every run must
    replay (the workflow code's determinism, checked on your agents' real histories)."""
    async with AgentKit(**agent_kit_options) as kit:
        yield kit
        kit.assert_script_consumed()
        await kit.assert_runs_replay()
