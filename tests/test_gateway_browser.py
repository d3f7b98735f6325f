"""A person approves from a signed link the webhook delivered: the gateway's page in Debian chromium (Playwright).

The proposal carries hostile model text (a `<script>` and a markdown image): the page must show it as text,
run no script and load no image. The same link again, and a link altered in any character, are refused.
Another proposal carries bidi overrides, zero-width and control characters: the page names them as escapes.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.gateway_support import WebhookSink, gateway_client, running_gateway, with_gateway, write_tokens
from tests.helpers import eventually
from tests.test_approval_browser import chromium
from tools.notes import NoteStore

pytestmark = pytest.mark.browser

HOSTILE = '<script>window.__pwned = 1</script> ![tracker](http://127.0.0.1:9/pixel.png) <img src=x onerror="window.__pwned=2">'
NOTE = {"title": "Plan <b>bold</b>", "body": HOSTILE}


@pytest.fixture
async def stack(client, settings, tmp_path):
    """A worker announcing requests to a webhook receiver, and the gateway its links point at."""
    from worker import build_worker

    with WebhookSink() as sink:
        gw_settings = with_gateway(settings, free_port(), webhook_url=sink.url)
        tokens = write_tokens(tmp_path / "tokens.toml")
        async with build_worker(client, gw_settings), running_gateway(client, gw_settings, tokens) as url:
            yield gw_settings, sink, url


async def test_approve_from_a_signed_link_in_chromium(client, stack, fake_llm):
    settings, sink, base_url = stack
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved."))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save the plan", "approval": {"approvers": ["alice"]}},
        id=workflow_id("gw-browser"),
        task_queue=settings.task_queue,
    )
    [notice] = await eventually(lambda: list(sink.delivered.values()), 20)
    [link] = notice["links"]
    assert link["approver"] == "alice"
    url = link["url"]

    async with chromium() as browser:
        page = await browser.new_page()
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        response = await page.goto(url, wait_until="domcontentloaded")
        assert response is not None and response.status == 200
        proposal = await page.locator("#proposal").inner_text()
        assert HOSTILE.replace('"', '\\"') in proposal  # shown as text, inside the JSON of the arguments
        assert "Plan <b>bold</b>" in proposal
        assert await page.locator("#proposal b, #proposal img, #proposal script").count() == 0
        assert await page.locator("img").count() == 0
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("#approver").inner_text() == "alice"
        await page.locator("#comment").fill("looks right <i>to me</i>")
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_selector("#outcome")
        assert await page.locator("#outcome").inner_text() == "Approved"
        assert await page.evaluate("window.__pwned") is None
        assert not [r for r in requested if "pixel.png" in r or r.endswith("/x")]

        result = await asyncio.wait_for(handle.result(), 20)
        assert result["status"] == "completed"
        assert [(n.title, n.body) for n in NoteStore(settings.notes_db).all()] == [(NOTE["title"], HOSTILE)]
        decision = (await handle.query("status"))["pending_approvals"]
        assert decision == []

        # The same link again: the request is decided, so it is refused.
        again = await page.goto(url, wait_until="domcontentloaded")
        assert again is not None and again.status == 409
        assert "no longer" in await page.locator("#refusal").inner_text()

        # One altered character anywhere in the link: refused (the signature covers the link as sent).
        token = urlsplit(url).path.removeprefix("/approve/")
        altered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        forged = await page.goto(f"{base_url}/approve/{altered}", wait_until="domcontentloaded")
        assert forged is not None and forged.status == 403
        assert "not valid" in await page.locator("#refusal").inner_text()
        await page.close()

    # Every position, over plain HTTP: no altered link is accepted.
    async with gateway_client(base_url) as http:
        for i, char in enumerate(token):
            for replacement in {"A", "0", "-", "_"} - {char}:
                changed = token[:i] + replacement + token[i + 1 :]
                answer = await http.get(f"/approve/{changed}")
                assert answer.status_code == 403, (i, replacement, answer.status_code)
        assert (await http.get(f"/approve/{token}x")).status_code == 403
        assert (await http.get(f"/approve/{token[:-1]}")).status_code == 403


SNEAKY = "Pay \u202eexe.txt\u202c to \u2067ACME\u2069\u200b now\x1b[8m hidden\x1b[0m\rOK\ufeff \x85"
"""Bidi overrides and isolates, a zero-width space, ANSI escapes, a carriage return, U+FEFF and a C1 control."""


async def test_bidi_and_control_characters_are_shown_as_escapes_in_chromium(client, stack, fake_llm):
    import unicodedata

    def invisible(text: str) -> set[str]:
        return {c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c not in "\n\t"}

    settings, sink, _ = stack
    note = {"title": "Invoice \u202eFDP.exe", "body": SNEAKY}
    fake_llm.push(Reply(tool_calls=[("write_note", note)]), Reply(text="Saved."))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save the invoice", "approval": {"approvers": ["alice"]}},
        id=workflow_id("gw-bidi"),
        task_queue=settings.task_queue,
    )
    [notice] = await eventually(lambda: list(sink.delivered.values()), 20)
    url = notice["links"][0]["url"]

    base, _, token = url.partition("/approve/")
    async with gateway_client(base) as http:  # the HTML as sent: no invisible character anywhere in it
        html_text = (await http.get(f"/approve/{token}")).text
    assert not invisible(html_text), sorted(map(hex, map(ord, invisible(html_text))))

    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(url, wait_until="domcontentloaded")
        proposal = await page.locator("#proposal").inner_text()
        summary = await page.locator("#summary").inner_text()
        for shown in (proposal, summary):
            assert not invisible(shown), sorted(map(hex, map(ord, invisible(shown))))
        assert "Invoice \\u202eFDP.exe" in proposal  # the override is named where it was, not obeyed
        escaped = (
            "Pay \\u202eexe.txt\\u202c to \\u2067ACME\\u2069\\u200b now\\u001b[8m hidden\\u001b[0m\\rOK\\ufeff \\u0085"
        )
        assert escaped in proposal
        assert "\\u202e" in summary
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_selector("#outcome")
        await page.close()

    assert (await asyncio.wait_for(handle.result(), 20))["status"] == "completed"
    # Only the display changed: the note holds exactly what the model wrote.
    assert [(n.title, n.body) for n in NoteStore(settings.notes_db).all()] == [(note["title"], SNEAKY)]
