"""The test kit: run your own agents on a worker and server it starts, with a scripted model (docs/testing-your-agents.md).

`AgentKit` and the pytest fixture `agent_kit` (testkit/pytest_plugin.py); cassettes and regression evals:
`python -m testkit` (testkit/cli.py).
"""

from devstack.scripted_http import Fault, Reply, StreamError
from testkit.drive import RunReport
from testkit.kit import AgentKit
from testkit.tap import ToolCallRecord

__all__ = ["AgentKit", "Fault", "Reply", "RunReport", "StreamError", "ToolCallRecord"]
