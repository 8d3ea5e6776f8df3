"""What every sandbox server's command line does once its server has started."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


async def serve_until_signalled(
    name: str, url: str, stop_server: Callable[[], Awaitable[None]]
) -> None:
    """Announces `<name> listening on <url>` (scripts wait for that line), then runs until
    SIGINT or SIGTERM and stops the server cleanly."""
    print(f"{name} listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await stop_server()
