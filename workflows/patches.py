"""Which behaviours a run has, decided once, by its first command: no patch marker can land anywhere else.

`workflow.patched(id)` records a marker where it is first called and, on replay, answers from the markers
of the workflow task being replayed. Called mid-run, the marker's place depends on what else the same
workflow task did: a signal or update handler that asks (the `approve` signal's rule), or a local
activity's result, which reaches the workflow mid-task on first execution but from its marker on replay,
can put the marker before a command on one and after it on the other. The run then fails every workflow
task with "patch marker ... no corresponding change command" or "change id ... does not match" (seen after
worker kills, with followers polling, and in this suite's replay check).

So a run asks once, as its first command, which *patch set* it has: one marker, `patch-set-N`, says that every
patch listed in `PATCH_SETS[:N]` is on, and every later `patched(id)` is answered from it without a command.
Runs recorded before patch sets (no such marker) decide each patch where they always did.

Adding a behaviour that running workflows must not see: append a new tuple to `PATCH_SETS` (never edit or
reorder an existing one) and ask `patched(id)` where the new code branches.
"""

from __future__ import annotations

from temporalio import workflow

PATCH_SETS: tuple[tuple[str, ...], ...] = (
    (
        "progress-stream",
        "bounded-stream-polls",
        "pinned-agents",
        "input-screening",
        "bounded-history",
        "archive-on-completion",
        "cancellation-closes-run",
        "approval-gateway",
        "approvals-in-memo",
        "signal-needs-one-pending",
        "budget-before-plan-approval",
        "bounded-tool-fan-in",
        "circuit-breakers",
        "local-read-tools",
        "parallel-tool-calls",
        "budget-estimates",
        "black-box-handoffs",
        "decisions-wait-for-their-request",
    ),
    ("unreadable-tool-arguments", "schema-in-instructions", "handoff-ends-reply", "local-steps-in-replay-order"),
    ("black-box-spend-wait",),
)
"""Patch set N (1-based) turns on every id in the first N tuples. Append only."""

LEGACY_IDS = frozenset(PATCH_SETS[0][:-1])
"""Patches that existed before patch sets: runs recorded then decide each where it is first asked. Every later
patch is off in those runs (and asks no marker of them)."""

INTRODUCED_IN = {patch_id: n for n, ids in enumerate(PATCH_SETS, start=1) for patch_id in ids}
LEGACY = 0
"""The patch set of runs recorded before patch sets: each patch is decided where it is first asked."""


def marker(version: int) -> str:
    """The patch id that records patch set `version`."""
    return f"patch-set-{version}"


def patch_set() -> int:
    """This run's patch set: the newest whose marker the run has (asked once, newest first), else `LEGACY`.

    A new run records the newest set this code knows. Replayed, a run answers with the set it recorded: asking
    for a newer one records nothing, since the marker is absent from its history.
    """
    instance = workflow.instance()
    version: int | None = getattr(instance, "_patch_set", None)
    if version is None:
        version = next((n for n in range(len(PATCH_SETS), 0, -1) if workflow.patched(marker(n))), LEGACY)
        instance._patch_set = version
    return version


def patched(patch_id: str) -> bool:
    """Whether this run has the behaviour `patch_id` guards (use instead of `workflow.patched`)."""
    introduced = INTRODUCED_IN.get(patch_id)
    if introduced is None:
        raise ValueError(f"patch {patch_id!r} is not in workflows/patches.py PATCH_SETS: append it there")
    version = patch_set()
    if version == LEGACY:
        return patch_id in LEGACY_IDS and workflow.patched(patch_id)
    return introduced <= version
