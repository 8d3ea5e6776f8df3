"""What the web page tests share: the browser, the two sizes, and the checks made on every page
(axe-core with no serious or critical violation, the language, a screenshot, and the server time
and weight printed)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from axe_playwright_python import __file__ as axe_package
from playwright.async_api import Browser, Page, Response, async_playwright

from tests.api.conftest import mail_text, read_mail

CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
AXE = (Path(axe_package).parent / "axe.min.js").read_text()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "web"
SIZES = {"telefono": {"width": 375, "height": 812}, "escritorio": {"width": 1280, "height": 800}}


async def mailed_link(outbox: Path, address: str, path: str, timeout: float = 10) -> str:
    """The path and query of the link to `path` in the newest mail that has one. Awaited: some
    mails go out after the page's answer, as a person finds them a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        for message in reversed(read_mail(outbox, address)):
            found = re.search(re.escape(path) + r"\?token=(\S+)", mail_text(message))
            if found:
                return f"{path}?token={unquote(found.group(1))}"
        assert time.monotonic() < deadline, f"no mail to {path}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium (Playwright never downloads one)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


async def applicant_page(
    browser: Browser, base_url: str, token: str, size: str, **options: Any
) -> Page:
    """A page of a new browser context at `size`, logged in with the session's cookie."""
    context = await browser.new_context(viewport=SIZES[size], locale="es-MX", **options)
    await context.add_cookies([{"name": "permisos_session", "value": token, "url": base_url}])
    return await context.new_page()


async def weight(page: Page) -> int:
    """Bytes transferred for the page and what it loaded (cached files count nothing)."""
    total: int = await page.evaluate(
        "performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource'))"
        ".reduce((n, e) => n + (e.transferSize || 0), 0)"
    )
    return total


@dataclass
class Visit:
    """Checks and records each page the journey reaches."""

    page: Page
    journey: str  # the screenshots' folder
    size: str
    shots: list[Path] = field(default_factory=list)

    async def check(self, name: str, response: Response | None = None) -> None:
        await self.page.evaluate(AXE)
        results = await self.page.evaluate("axe.run()")
        grave = [
            f"{v['id']} ({v['impact']}): {v['help']}"
            for v in results["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert grave == [], f"{name}: {grave}"
        assert await self.page.locator("html").get_attribute("lang") == "es-MX"
        target = SCREENSHOTS / self.journey / self.size / f"{len(self.shots) + 1:02d}-{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(target), full_page=True)
        self.shots.append(target)
        if response is not None:
            timing = await response.header_value("server-timing") or "?"
            sent = await weight(self.page)
            print(f"[{self.size}] {name}: server {timing}, {sent} bytes transferred")

    async def submit(self, button: str) -> Response | None:
        async with self.page.expect_navigation() as navigation:
            await self.page.get_by_role("button", name=button).click()
        return await navigation.value
