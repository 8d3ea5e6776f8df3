"""Relaying one TCP connection to an upstream address as bytes (TLS passes through untouched):
the node agent's `kubernetes` Service address and the tests' cuttable proxies use it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import MutableSet


async def relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream: tuple[str, int],
    open_writers: MutableSet[asyncio.StreamWriter] | None = None,
) -> None:
    """Copies both ways until either side closes; `open_writers` holds both ends meanwhile
    (so whoever owns it can cut them). An unreachable upstream closes the connection."""
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
    except OSError:
        writer.close()
        return
    ends = {writer, up_writer}
    if open_writers is not None:
        open_writers |= ends

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    finally:
        if open_writers is not None:
            open_writers -= ends
