"""Outgoing mail: SMTP when a host is configured, else one RFC 5322 .eml file per message."""

from __future__ import annotations

import logging
import os
import smtplib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .settings import ApiSettings

log = logging.getLogger("permisos_api.mail")


class Mailer:
    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings

    def compose(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self._settings.mail_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain="permisosdigitales.mx")
        msg.set_content(body)
        return msg

    def send(self, to: str, subject: str, body: str, *, kind: str) -> None:
        """`kind` names the message in logs; the address never appears there."""
        msg = self.compose(to, subject, body)
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
        log.info("mail sent: %s", kind)
