"""A person approves a write from the Temporal UI: headless Debian chromium driven by Playwright.

Needs `apt-get install chromium` and `pip install playwright` (never `playwright install`: no downloads here).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata

from devstack.fake_anthropic import Reply
from tests.conftest import ARTIFACTS, workflow_id
from tests.helpers import pending_approvals
from tools.notes import NoteStore

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTE = {"title": "Answer", "body": "1200"}


@contextlib.asynccontextmanager
async def chromium():
    """Debian's chromium under Playwright; missing pieces fail the test (CI installs them), never skip it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`); CI installs it")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the `playwright` Python package is missing: `pip install playwright` (never `playwright install`)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def frame_text(page, url_part: str, needle: str, timeout: float = 20.0) -> str:
    """Text of the first frame whose URL contains `url_part` and whose body shows `needle`."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        for frame in page.frames:
            if url_part in frame.url:
                try:
                    text = await frame.locator("body").inner_text(timeout=1000)
                except Exception:
                    continue
                if needle in text:
                    return text
                seen.append(text[:200])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no frame {url_part!r} showed {needle!r}; saw {seen[-3:]}")


async def test_approve_from_the_ui_signal_form(client, worker, fake_llm, dev_server):
    async with chromium() as browser:
        await approve_in_the_ui(client, worker, fake_llm, dev_server, browser)


async def approve_in_the_ui(client, worker, fake_llm, dev_server, browser):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved the note."))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1200 as a note"},
        id=workflow_id("ui-approve"),
        task_queue=worker.task_queue,
    )
    await pending_approvals(handle)
    ARTIFACTS.mkdir(exist_ok=True)

    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(20_000)
    try:
        await page.goto(f"{dev_server.ui_url}/namespaces/default/workflows/{handle.id}", wait_until="domcontentloaded")

        # The reviewer reads what is proposed on the "User Metadata" tab, without a query.
        await page.get_by_role("tab", name="User Metadata").locator("visible=true").click()
        details = await frame_text(page, "/render", "Waiting for approval: req-1")
        assert "write_note" in details and '"title": "Answer"' in details and '"body": "1200"' in details

        # More Actions -> Send a Signal -> approve, with the approver's JSON.
        await page.get_by_role("button", name="More Actions").locator("visible=true").click()
        await page.locator('[data-testid="signal-button"]:visible').click()
        modal = page.locator('[data-testid="signal-confirmation-modal"]:visible')
        await modal.wait_for()
        await modal.locator('[data-testid="signal-select-button"]').click()
        approve = modal.get_by_role("option").filter(has=page.locator("span", has_text=re.compile(r"^approve$")))
        assert "Approve a pending request" in await approve.inner_text()  # the handler's description is listed
        await approve.click()
        editor = modal.locator(".cm-content")
        await editor.click()
        await page.keyboard.insert_text('{"approver": "alice", "comment": "approved in the UI"}')
        # Blur so the UI reformats the JSON; the dialog grows then, so wait before clicking Submit.
        await modal.get_by_text("Single JSON payload supported.").click()
        await page.wait_for_function(
            'el => el.innerText.includes(\'\\n  "approver": "alice"\')', arg=await editor.element_handle()
        )
        await page.wait_for_timeout(300)
        await page.screenshot(path=str(ARTIFACTS / "approve-signal-form.png"))

        await modal.locator('[data-testid="confirm-modal-button"]').click()
        await page.get_by_text("Workflow signaled.").locator("visible=true").first.wait_for()
    except Exception:
        await page.screenshot(path=str(ARTIFACTS / "approve-signal-form-failure.png"))
        raise
    finally:
        await page.close()

    # The UI says "signaled" even for payloads the worker drops: the outcome is what counts.
    result = await asyncio.wait_for(handle.result(), 20)
    assert result["status"] == "completed" and result["output"] == "Saved the note."
    assert [(n.title, n.body) for n in NoteStore(worker.notes_db).all()] == [("Answer", "1200")]
    status = await handle.query("status")
    assert status["ignored_decisions"] == []
    # The decision recorded is the one typed into the form (what the UI now shows as current details).
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details == "req-1 approved by alice: run write_note(title='Answer', body='1200')"
    fake_llm.assert_script_consumed()
    assert (ARTIFACTS / "approve-signal-form.png").stat().st_size > 10_000
