"""Which patches can go: the retirement rule of docs/deployments.md, applied to what a cluster's visibility says.

The rule: a patch's old branch may be deleted once no open run that needs it remains. A run needs the old branch
of every patch its patch set does not turn on (workflows/patches.py): a run that recorded `patch-set-N` needs the
old branches of the patches of sets N+1 and later; a run recorded before patch sets (`LEGACY`) may need any.

Visibility lists the open runs and the build id each one is on (Worker Deployment versioning info); each run's
patch set is the marker its first workflow task recorded. The report groups the open runs by build id with the
oldest patch set among them, and names the patches whose old branch no open run needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowHistory

from workflows.patches import INTRODUCED_IN, LEGACY, PATCH_SETS
from workflows.versioning import BEHAVIORS

PATCH_MARKER = "core_patch"
"""The marker name the Python SDK records for `workflow.patched`."""


def recorded_patches(history: WorkflowHistory) -> list[str]:
    """The patch ids a run recorded, in order."""
    found = []
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == PATCH_MARKER:
                found.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


def patch_set_of(history: WorkflowHistory) -> int:
    """The patch set a run recorded (its newest `patch-set-N` marker), or LEGACY when it has none."""
    sets = [int(p.removeprefix("patch-set-")) for p in recorded_patches(history) if p.startswith("patch-set-")]
    return max(sets, default=LEGACY)


def retirable(oldest_open_set: int | None) -> list[str]:
    """The patches whose old branch no open run needs, given the oldest patch set among open runs (None: none open).

    A patch introduced in set k is on in every run of set k or later; with a LEGACY run open, nothing can go.
    """
    if oldest_open_set is None:
        return [p for ids in PATCH_SETS for p in ids]
    if oldest_open_set == LEGACY:
        return []
    return [p for p, introduced in INTRODUCED_IN.items() if introduced <= oldest_open_set]


@dataclass
class BuildGroup:
    """The open runs on one build id and the oldest patch set among them."""

    build_id: str
    runs: int = 0
    oldest_set: int | None = None
    example: str = ""

    def add(self, workflow_id: str, patch_set: int) -> None:
        """Count one more open run of this build."""
        self.runs += 1
        if self.oldest_set is None or patch_set < self.oldest_set:
            self.oldest_set, self.example = patch_set, workflow_id


@dataclass
class PatchReport:
    """Open runs by build id, and the patches whose old branches can be deleted now."""

    groups: dict[str, BuildGroup] = field(default_factory=dict)

    @property
    def oldest_set(self) -> int | None:
        """The oldest patch set among all open runs; None when no run is open."""
        sets = [g.oldest_set for g in self.groups.values() if g.oldest_set is not None]
        return min(sets, default=None)

    def lines(self) -> Iterable[str]:
        """The report as printed by `python -m releases patches`."""
        yield f"patch sets in this checkout: {len(PATCH_SETS)} (workflows/patches.py)"
        for group in sorted(self.groups.values(), key=lambda g: g.build_id):
            oldest = "legacy (before patch sets)" if group.oldest_set == LEGACY else f"patch-set-{group.oldest_set}"
            yield f"build {group.build_id}: {group.runs} open runs, oldest {oldest} (e.g. {group.example})"
        can_go = retirable(self.oldest_set)
        must_stay = [p for ids in PATCH_SETS for p in ids if p not in can_go]
        yield f"can go now ({len(can_go)}): {', '.join(can_go) or '-'}"
        yield f"must stay ({len(must_stay)}): {', '.join(must_stay) or '-'}"


async def _build_id(client: Client, workflow_id: str, run_id: str) -> str:
    # Visibility's listing leaves versioning info out; describing the run has it.
    described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    version = described.raw_description.workflow_execution_info.versioning_info.deployment_version
    if version.build_id:
        return f"{version.deployment_name}.{version.build_id}"
    return "unversioned"


async def patch_report(client: Client, query: str = "") -> PatchReport:
    """Read every open run of the product's types (matching `query`) from visibility and its patch marker from its history."""
    report = PatchReport()
    where = 'ExecutionStatus="Running"' + (f" AND ({query})" if query else "")
    async for execution in client.list_workflows(where):
        if execution.workflow_type not in BEHAVIORS:
            continue  # another product's runs on the same namespace: none of our patches
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        build = await _build_id(client, execution.id, execution.run_id)
        report.groups.setdefault(build, BuildGroup(build)).add(execution.id, patch_set_of(history))
    return report
