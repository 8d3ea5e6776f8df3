"""Playwright's driver and Chromium as a pod starts them, before the rest of the runner loads.

Chromium is launched as soon as the driver is up, while the runner's modules may still be
loading (`__main__`); its path comes from the variable the settings read, and the pod launches
again should the settings say otherwise.

Node's compile cache for the driver, which a pod starts on every attempt:

The driver is one large bundle of JavaScript that Node would compile on every start; with
`NODE_COMPILE_CACHE` it reads the compiled code instead (about 0.07 s of the driver's 0.3 s).
The cache lives beside the driver: the image fills it at build time, as the runner's user
(`python -m permisos_runner.driver`, `browser-runner/Dockerfile`), since the pod's root
filesystem is read-only; a writable install fills it on its first run. Node keeps a cache per
user, Node version and CPU; one that does not match is ignored, not an error.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING

import playwright
from playwright.async_api import Playwright

if TYPE_CHECKING:
    from playwright.async_api import Browser

DEFAULT_CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"


def chromium_path() -> str:
    return os.environ.get("PERMISOS_RUNNER_CHROMIUM_PATH", DEFAULT_CHROMIUM)


async def launch(playwright: Playwright | Awaitable[Playwright], path: str) -> Browser:
    """Chromium, headless; `playwright` may still be starting."""
    if not isinstance(playwright, Playwright):
        playwright = await playwright
    return await playwright.chromium.launch(executable_path=path, headless=True)


CACHE = Path(playwright.__file__).parent / "driver" / "compile-cache"


def use_compile_cache() -> None:
    """Points Node at the cache beside the driver, unless the environment chose one."""
    os.environ.setdefault("NODE_COMPILE_CACHE", str(CACHE))


async def _fill() -> None:
    from playwright.async_api import async_playwright

    async with async_playwright():
        pass  # Node writes the cache as the driver exits


if __name__ == "__main__":
    use_compile_cache()
    asyncio.run(_fill())
    # Node keeps the files to their user; the image copies them on to root, modes kept.
    for path in Path(os.environ["NODE_COMPILE_CACHE"]).rglob("*"):
        if path.stat().st_uid == os.getuid():
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
