"""Headless Chromium for the dashboard tests: the system's browser (Debian's `chromium`, which
.ci/run installs), driven by Playwright, isolated from any profile and from the network's
background services, with every request and console message recorded."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, Playwright

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "no chromium on PATH: install Debian's `chromium` package (.ci/run does)"
    return found


@dataclass
class Recorded:
    """What the page did: every request's URL, console messages (type, text) and uncaught errors."""

    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def browser_page(playwright: Playwright, profile: Path, width: int = 1100, height: int = 900):
    """(page, recorded) in a fresh headless Chromium with its own profile folder (`playwright`: the
    one sync_playwright() of the test module; a thread may hold only one)."""
    recorded = Recorded()
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=chromium_binary(),
        headless=True,
        args=FLAGS,
        viewport={"width": width, "height": height},
    )
    try:
        page: Page = context.pages[0] if context.pages else context.new_page()
        context.on("request", lambda r: recorded.requests.append(r.url))
        page.on("console", lambda m: recorded.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: recorded.errors.append(str(e)))
        yield page, recorded
    finally:
        context.close()
