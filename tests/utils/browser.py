"""Browser-test fixtures: the real app served on a free loopback port, and Debian's Chromium driven by Playwright.

Chromium comes from Debian (`scripts/system-deps.sh`); Playwright never downloads a browser. Tests that use these
fixtures are skipped, with the reason, on a machine without /usr/bin/chromium.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.runtime import Runtime

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServedApp:
    url: str
    runtime: Runtime
    port: int
    web_app: Any  # the running gr.Blocks


@pytest.fixture
def chromium_browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed; run `make system-deps` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def serve_app(monkeypatch, tmp_path):
    """Call `serve_app(runtime, require_login=..., throttle=...)` to serve the app as `rise serve` does, on a free
    port of the runtime's host (127.0.0.1 by default); it is closed after the test."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    launched = []

    def serve(runtime: Runtime, *, require_login: bool | None = None, throttle: Any = None) -> ServedApp:
        from app.ui.server import serve_web_app

        port = free_port()
        demo = serve_web_app(runtime, require_login=require_login, port=port, block=False, throttle=throttle)
        launched.append(demo)
        return ServedApp(url=f"http://127.0.0.1:{port}/", runtime=runtime, port=port, web_app=demo)

    yield serve
    for demo in launched:
        demo.close()


def save_screenshot(page, name: str) -> Path:
    """Keep a screenshot as a test artifact (test-artifacts/ is git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
