"""Point the test kit at this folder's agents file and tools; the `agent_kit` fixture does the rest."""

from pathlib import Path

import pytest

from testkit.pytest_plugin import agent_kit  # noqa: F401  (or run pytest with -p testkit.pytest_plugin)

HERE = Path(__file__).parent


@pytest.fixture
def agent_kit_options() -> dict:
    """The kit's settings for every test here: your agents file, your tool modules, which server."""
    return {"agents_file": HERE / "agents.toml", "tool_modules": ["shop_tools"], "server": "time-skipping"}
