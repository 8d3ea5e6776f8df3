"""Outgoing mail: SMTP when a host is configured, else one RFC 5322 .eml file per message."""

from __future__ import annotations

import logging
import os
import smtplib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from .letters import Letter, letter
from .settings import ApiSettings

log = logging.getLogger("permisos_api.mail")


class Mailer:
    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings

    def letter(self, kind: str, **context: Any) -> Letter:
        """The mail `kind` for this context; its templates also get `base`, the web's URL."""
        return letter(kind, base=self._settings.public_base_url.rstrip("/"), **context)

    def compose(self, to: str, letter: Letter) -> EmailMessage:
        """Plain text first, then HTML: a mail reader shows the last part it can."""
        msg = EmailMessage()
        msg["From"] = self._settings.mail_from
        msg["To"] = to
        msg["Subject"] = letter.subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain="permisosdigitales.mx")
        msg.set_content(letter.text)
        msg.add_alternative(letter.html, subtype="html")
        return msg

    def send(self, to: str, kind: str, **context: Any) -> None:
        """`kind` names the message in logs; the address never appears there."""
        letter = self.letter(kind, **context)
        msg = self.compose(to, letter)
        s = self._settings
        if s.smtp_host:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
                smtp.send_message(msg)
        else:
            outbox = s.mail_outbox_dir
            outbox.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            final = outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            tmp = final.with_suffix(".tmp")
            # Written aside then renamed, so a reader never sees half a message.
            tmp.write_bytes(msg.as_bytes())
            os.replace(tmp, final)
        log.info("mail sent: %s", letter.kind)

    def send_or_log(self, to: str, kind: str, **context: Any) -> None:
        """`send` where nobody waits for the answer (after a response, after a payment): an
        outage is logged, never raised."""
        try:
            self.send(to, kind, **context)
        except Exception as exc:
            log.warning("mail not sent: %s (%s)", kind, type(exc).__name__)
