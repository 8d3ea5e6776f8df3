"""The mail catcher's contract: what the API sends over SMTP arrives whole, as the same .eml file
its file outbox would write, and the catcher refuses nothing a relay would accept."""

from __future__ import annotations

import email
import email.policy
import smtplib
from email.message import EmailMessage
from pathlib import Path

from permisos_api.mail import Mailer
from permisos_api.settings import ApiSettings
from permisos_sandbox.mail import MailCatcher


def test_the_apis_smtp_mail_lands_as_one_eml_file(tmp_path: Path) -> None:
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = ApiSettings(smtp_host=catcher.host, smtp_port=catcher.port, smtp_starttls=False)
        link = "https://example.test/verificar?token=abc&Ñandú"
        mailer = Mailer(settings)
        mailer.send("juana@example.com", "verify-email", link=link, hours=24)
        files = sorted((tmp_path / "mail").glob("*.eml"))
        assert len(files) == 1
        message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
        assert message["To"] == "juana@example.com"
        assert message["Subject"] == "Confirma tu correo — Permisos Digitales"
        # Both parts arrive whole (SMTP carries lines ending in CRLF).
        sent = mailer.letter("verify-email", link=link, hours=24)
        for subtype, expected in (("plain", sent.text), ("html", sent.html)):
            part = message.get_body((subtype,))
            assert part is not None
            assert part.get_content().replace("\r\n", "\n") == expected
        assert not list((tmp_path / "mail").glob("*.tmp"))


def test_several_recipients_and_messages_each_make_a_file(tmp_path: Path) -> None:
    with MailCatcher(tmp_path / "mail") as catcher:
        with smtplib.SMTP(catcher.host, catcher.port, timeout=10) as smtp:
            for n in range(3):
                msg = EmailMessage()
                msg["From"] = "a@example.com"
                msg["To"] = "b@example.com, c@example.com"
                msg["Subject"] = f"n{n}"
                msg.set_content("hola")
                refused = smtp.send_message(msg)
                assert refused == {}
        subjects = sorted(
            email.message_from_bytes(p.read_bytes())["Subject"]
            for p in (tmp_path / "mail").glob("*.eml")
        )
        assert subjects == ["n0", "n1", "n2"]
    # Stopped: nothing listens any more.
    try:
        smtplib.SMTP(catcher.host, catcher.port, timeout=2).quit()
    except OSError:
        pass
    else:
        raise AssertionError("the catcher still answers after stop")
