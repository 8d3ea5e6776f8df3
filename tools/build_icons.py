"""Draws the web app's PNG icons (192 and 512 pixels) from its SVG with Debian's Chromium.

    .venv/bin/python tools/build_icons.py

The PNGs are committed beside the SVG (api/permisos_api/web/static/); run this after changing
the SVG. Phones that install the web app want PNG icons of these sizes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import async_playwright

STATIC = Path(__file__).resolve().parents[1] / "api" / "permisos_api" / "web" / "static"
CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
SIZES = (192, 512)


async def main() -> None:
    svg = (STATIC / "icono.svg").read_text()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            for size in SIZES:
                page = await browser.new_page(viewport={"width": size, "height": size})
                sized = svg.replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
                await page.set_content(f'<html><body style="margin:0">{sized}</body></html>')
                target = STATIC / f"icono-{size}.png"
                await page.screenshot(path=str(target), omit_background=True)
                print(f"wrote {target}")
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
