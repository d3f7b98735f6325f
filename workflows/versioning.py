"""Each workflow type's Worker Deployment versioning behavior, decided here, in one place (docs/deployments.md).

Only workers that join a Worker Deployment (WORKER_DEPLOYMENT_NAME) act on these; unversioned workers ignore them.

- `AgentLoopWorkflow`: pinned, and upgraded on continue-as-new. A generation finishes on the code it started
  with, so a deploy never changes its steps under it; a long loop continues as new between steps (nothing
  pending, no handler mid-way), the one safe point where the next generation may start on the current version.
- `BlackBoxAgentWorkflow`: pinned. A run is a few whole-agent activities (minutes, or one approval between
  steps); it finishes on its version, and old versions drain quickly.
- `HybridAgentWorkflow`: auto-upgrade, with patches. Its plan waits for a person for up to a year
  (`approval.timeout_seconds`); pinning would keep every old version's workers alive that long. It moves to
  the current version at its next workflow task, and `workflows/patches.py` keeps its recorded branches.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.workflow import ContinueAsNewVersioningBehavior

AGENT_LOOP = VersioningBehavior.PINNED
BLACK_BOX = VersioningBehavior.PINNED
HYBRID = VersioningBehavior.AUTO_UPGRADE
SPEND_LEDGER = VersioningBehavior.AUTO_UPGRADE
"""A spend-limit ledger lives for a whole window, its state all in its carry: it moves to each new version."""

ON_CONTINUE_AS_NEW = ContinueAsNewVersioningBehavior.AUTO_UPGRADE
"""A new generation starts on the deployment's current version (then keeps its type's behavior): the upgrade
point of a pinned long run."""


def on_continue_as_new() -> ContinueAsNewVersioningBehavior | None:
    """ON_CONTINUE_AS_NEW on a versioned worker; None on an unversioned one, whose server refuses any behavior
    ("versioning behavior cannot be specified without deployment options") and would fail the task forever."""
    version = workflow.info().get_current_deployment_version()
    versioned = version is not None and bool(version.deployment_name)  # unversioned workers may report a build id
    return ON_CONTINUE_AS_NEW if versioned else None


BEHAVIORS = {
    "AgentLoopWorkflow": AGENT_LOOP,
    "BlackBoxAgentWorkflow": BLACK_BOX,
    "SpendLedgerWorkflow": SPEND_LEDGER,
    "HybridAgentWorkflow": HYBRID,
}
"""Workflow type -> behavior, for the docs and the patch-retirement command."""
