"""The `archive_run` activity's contract: what a finished run hands to its archive, and the receipt."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from models.conversation import Conversation

ANNOTATION_NAMES = ("plan", "specialist_results", "final_answer", "customer_id", "status", "handoffs", "agent")
"""The named structured outputs every archive carries (null where a workflow has none)."""


class ArchiveRequest(BaseModel):
    """One run's record. Sent to a local activity, so it never enters the event history."""

    workflow_id: str
    first_run_id: str
    """Continue-as-new generations share the first run's id, and so one archive."""
    run_id: str
    workflow_type: str
    status: str
    output: Any = None
    usage: dict[str, Any] = Field(default_factory=dict)
    steps: int = 0
    trace_id: str = ""
    annotations: dict[str, Any] = Field(default_factory=dict)
    """Named structured outputs (ANNOTATION_NAMES), attached to the archive object for lookups."""
    conversations: dict[str, Conversation] = Field(default_factory=dict)
    """Conversations the workflow holds inline, by role (e.g. `agent`, `planning`, `execution`)."""
    input: dict[str, Any] = Field(default_factory=dict)
    """The run's `agent`, `prompt` and `model`, so that the run can be re-run (cassettes, regression evals)."""
    blob_keys: list[str] = Field(default_factory=list)
    """Blob-store keys of offloaded items (conversation references, claim-checked payloads) to embed."""


class ArchiveReceipt(BaseModel):
    """Where the archive is and what this call did."""

    name: str
    uri: str | None = None
    written: bool = False
    """False when the archive already existed (a retry or re-run) or archiving is off."""
    annotations: Literal["s3", "sidecar", "off"] = "off"
    """How the annotations are attached: S3 object annotations, or a sidecar JSON object."""
