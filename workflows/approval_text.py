"""What people read about approvals: the UI's proposal text and the wording of refused decisions."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from models.approval import ApprovalRequest


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, as the person who sent it typed it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def first_error(exc: ValidationError) -> str:
    """A validation error as one line: each field's path and what is wrong with it."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())


def proposal_markdown(workflow_id: str, request: ApprovalRequest) -> str:
    """What the Temporal UI shows (current details) while a request waits: the proposal and how to answer."""
    proposal = json.dumps(request.proposal, indent=2, sort_keys=True)
    who = ", ".join(request.approvers) if request.approvers else "anyone"
    return (
        f"## Waiting for approval: {request.request_id}\n\n"
        f"**{request.summary}**\n\n```json\n{proposal}\n```\n\n"
        f"Expires {request.expires_at.isoformat()} (then counts as rejected). Approvers: {who}.\n\n"
        f'Approve: signal `approve` with `{{"approver": "<name>", "request_id": "{request.request_id}"}}`; '
        f'reject: signal `reject` with `{{"approver": "<name>", "reason": "...", "request_id": "{request.request_id}"}}`. '
        "The approver name in a signal is taken as sent; the gateway's approval links and API authenticate it.\n\n"
        f"CLI: `temporal workflow signal --workflow-id {workflow_id} --name approve "
        f'--input \'{{"approver": "<name>", "request_id": "{request.request_id}"}}\'`'
    )
