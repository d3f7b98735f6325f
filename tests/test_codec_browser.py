"""The Temporal UI decodes an encrypted run through the codec server (headless Debian chromium, Playwright).

The dev server's UI gets the codec endpoint at start (`--ui-codec-endpoint`), so this test starts its
own small dev server rather than the session's.
"""

from __future__ import annotations

import base64
import os

import pytest

from config.settings import Settings
from devstack.dev_server import free_port, start_dev_server
from devstack.fake_anthropic import Reply
from payloads.codec_server import CodecServer
from payloads.converter import payload_codec
from service.connect import connect
from tests.conftest import ARTIFACTS, workflow_id
from tests.test_approval_browser import chromium

pytestmark = pytest.mark.browser

SECRET = "passport X1234567 of Ada Lovelace"
TOKEN = "ui-codec-token"


async def test_the_ui_shows_decrypted_input_through_the_codec_server(settings, fake_llm, tmp_path):
    from worker import build_worker

    env = {**os.environ, "PAYLOAD_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}
    ui_port = free_port()
    codec_server = CodecServer(
        payload_codec(Settings.from_env(env)), TOKEN, origins=(f"http://localhost:{ui_port}",)
    ).start()
    server = start_dev_server(
        port=free_port(),
        ui_port=ui_port,
        db_file=str(tmp_path / "ui-codec.db"),
        ui_codec_endpoint=f"{codec_server.url}/{TOKEN}",
    )
    try:
        await server.wait_serving()
        secure = await connect(Settings.from_env(env), target_host=server.address)
        fake_llm.push(Reply(text="Stored."))
        async with build_worker(secure, settings):
            handle = await secure.start_workflow(
                "AgentLoopWorkflow",
                {"prompt": f"Keep {SECRET} on file"},
                id=workflow_id("ui-codec"),
                task_queue=settings.task_queue,
            )
            await handle.result()
        history = await handle.fetch_history()
        assert SECRET.encode() not in b"".join(e.SerializeToString() for e in history.events)

        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            try:
                await page.goto(
                    f"{server.ui_url}/namespaces/default/workflows/{handle.id}", wait_until="domcontentloaded"
                )
                await page.get_by_text(SECRET).locator("visible=true").first.wait_for()
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "ui-codec-decoded.png"))
            except Exception:
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "ui-codec-failure.png"))
                raise
            finally:
                await page.close()
    finally:
        server.stop()
        codec_server.stop()
