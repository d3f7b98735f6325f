"""`/approve/{link}`: one request as an HTML page with Approve and Reject, decided as the link's approver.

The signed link is the capability (no cookies, no session), so a forged cross-site form gains nothing
without the link itself; a POST whose `Origin` is another site is refused all the same. Everything the
model wrote is HTML-escaped, with its control, bidi and other invisible characters shown as escapes
(models/visible.py), and the page forbids scripts and remote images (Content-Security-Policy).
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.approval_links import ApprovalLink, LinkInvalid, proposal_digest, verify_link
from gateway.http import ApiError
from gateway.temporal import check_approver, decide, pending_request
from models.visible import visible

RunAt = tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # the link is a capability: never hand it to another site
    "Cache-Control": "no-store",
}
STYLE = (
    "body{font-family:sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
    "pre{background:#f4f4f4;padding:1rem;white-space:pre-wrap;word-break:break-word}"
    "textarea{width:100%;min-height:5rem}button{font-size:1rem;margin:.5rem .5rem 0 0;padding:.4rem 1.2rem}"
)


def _shown(text: object) -> str:
    """Text for the page: invisible characters made visible, then HTML-escaped (never markup)."""
    return html.escape(visible(str(text)))


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_shown(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=SECURITY_HEADERS)


def _refusal(status: int, message: str) -> HTMLResponse:
    return _page("Approval refused", f'<h1>Cannot decide</h1><p id="refusal">{_shown(message)}</p>', status)


async def _open_request(request: Request) -> tuple[ApprovalLink, dict[str, Any], RunAt]:
    """The link's request, still pending in the link's own run and unchanged since the link was made; ApiError
    otherwise."""
    try:
        link = verify_link(request.app.state.settings.gateway.link_secret, request.path_params["link"])
    except LinkInvalid as exc:
        raise ApiError(403, str(exc)) from None
    if link.expired():
        raise ApiError(409, f"this link expired with request {link.request_id} at {link.expires_at.isoformat()}")
    # Bound to the link's run: a later run that reuses the workflow id is another run, which this link cannot decide.
    client: Client = request.app.state.client
    handle = client.get_workflow_handle(link.workflow_id, first_execution_run_id=link.first_run_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise ApiError(409, f"the run this link was made for ({link.workflow_id}) no longer exists") from None
    if (description.raw_info.first_run_id or description.run_id) != link.first_run_id:
        raise ApiError(409, f"this link was made for an earlier run of {link.workflow_id}, which has ended")
    pending = await pending_request(handle, description, link.request_id)
    if proposal_digest(pending["kind"], pending["summary"], pending["proposal"]) != link.proposal_digest:
        raise ApiError(409, "this link was made for another proposal")
    check_approver(pending, link.approver)
    return link, pending, (handle, description)


def _form(link: ApprovalLink, pending: dict[str, Any]) -> str:
    proposal = json.dumps(pending["proposal"], indent=2, sort_keys=True, ensure_ascii=False)
    e = _shown
    return (
        f"<h1>Approval requested: {e(link.request_id)}</h1>"
        f'<p>Run <code>{e(link.workflow_id)}</code> asks <strong id="approver">{e(link.approver)}</strong>:</p>'
        f'<p id="summary">{e(pending["summary"])}</p>'
        f'<pre id="proposal">{e(proposal)}</pre>'
        f"<p>Expires {e(pending['expires_at'])} (then it counts as rejected).</p>"
        '<form method="post">'
        '<label for="comment">Comment (the reason, when you reject)</label>'
        '<textarea id="comment" name="comment" maxlength="5000"></textarea>'
        '<button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="reject">Reject</button>'
        "</form>"
    )


async def show_request(request: Request) -> Response:
    """`GET /approve/{link}`: the proposal and the two buttons, or why the link no longer works."""
    try:
        link, pending, _ = await _open_request(request)
    except ApiError as exc:
        return _refusal(exc.status, exc.detail)
    return _page(f"Approve {link.request_id}?", _form(link, pending))


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":  # non-browser callers; privacy modes: the link alone is the capability
        return True
    allowed = {f"{request.url.scheme}://{request.url.netloc}"}
    public = request.app.state.settings.gateway.public_url
    if public:
        parts = urlsplit(public)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    return origin in allowed


async def decide_request(request: Request) -> Response:
    """`POST /approve/{link}` (the page's form): decide as the link's approver, through the `decide` update."""
    if not _same_origin(request):
        return _refusal(403, "this form may only be sent from the approval page itself")
    try:
        link, _, (handle, description) = await _open_request(request)
        form = await request.form()
        choice = form.get("decision")
        comment = str(form.get("comment") or "")[:5000]
        if choice not in ("approve", "reject"):
            raise ApiError(422, "choose Approve or Reject")
        decision = await decide(
            handle,
            description,
            link.request_id,
            approver=link.approver,
            approved=choice == "approve",
            comment=comment,
        )
    except ApiError as exc:
        return _refusal(exc.status, exc.detail)
    e = _shown
    verdict = "Approved" if decision["approved"] else "Rejected"
    return _page(
        verdict,
        f'<h1 id="outcome">{verdict}</h1><p>{e(decision["request_id"])} of <code>{e(link.workflow_id)}</code>, '
        f"recorded as decided by {e(decision['approver'])}.</p>",
    )
