"""A mail catcher: an SMTP server on loopback that keeps every message it is sent as a file.

The API in a pod sends its mail over SMTP as it would to a real relay; the catcher writes each
message into a directory as `<time>-<id>.eml`, the same files the API's own file outbox writes,
so the applicant's inbox on this machine is one folder whichever way the mail came.

    with MailCatcher(outbox) as mail:
        ...  # give mail.host and mail.port to the API (smtp.host, smtp.port, no STARTTLS)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from permisos_sandbox.ports import free_port


class _Keep:
    def __init__(self, outbox: Path, delay: float) -> None:
        self.outbox = outbox
        self.delay = delay

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        content = envelope.original_content or b""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = final.with_suffix(".tmp")
        # Written aside then renamed, so a reader never sees half a message.
        tmp.write_bytes(content)
        os.replace(tmp, final)
        return "250 OK"


class MailCatcher:
    def __init__(
        self, outbox: Path, host: str = "127.0.0.1", port: int = 0, delay: float = 0
    ) -> None:
        """`delay`: seconds before each message is accepted, as a relay across a network takes."""
        self.outbox = outbox
        self.host = host
        self.port = port or free_port(host)
        self.delay = delay
        self._controller: Controller | None = None

    def start(self) -> MailCatcher:
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(
            _Keep(self.outbox, self.delay), hostname=self.host, port=self.port
        )
        self._controller.start()  # returns once the server answers
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
        *_: Any,
    ) -> None:
        self.stop()
