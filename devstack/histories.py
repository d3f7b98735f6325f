"""Reading every generation of a run that continued as new: its histories in order, and their sizes."""

from __future__ import annotations

from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory


async def generations(client: Client, workflow_id: str, first_run_id: str) -> list[WorkflowHistory]:
    """The history of each run of a workflow id, from `first_run_id` along its continue-as-new chain."""
    histories: list[WorkflowHistory] = []
    run_id: str | None = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    return histories


def history_bytes(history: WorkflowHistory) -> int:
    """Serialized size of a history, as the server counts it against its limits."""
    return History(events=history.events).ByteSize()
