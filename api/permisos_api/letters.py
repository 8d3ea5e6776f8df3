"""The applicant's mails, each in plain text and HTML from one pair of templates in
`mail_templates/` (`<kind>.txt` and `<kind>.html`, sharing `_base.html`), in Spanish.

`letter(kind, **context)` renders them; `Mailer.send` sends both as multipart/alternative. Links
go to the web pages (the public base URL), never to the JSON API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("mail_templates")
SUBJECTS = {
    "verify-email": "Confirma tu correo — Permisos Digitales",
    "register-existing": "Ya tienes una cuenta — Permisos Digitales",
    "password-reset": "Restablece tu contraseña — Permisos Digitales",
    "payment_received": "Pago recibido — Permisos Digitales",
    "oxxo_voucher": "Tu ficha de pago en OXXO — Permisos Digitales",
    "permit_ready": "Tu permiso está listo — Permisos Digitales",
    "permit_failed": "No fue posible obtener tu permiso — Permisos Digitales",
    "permit_expiry_reminder": "Tu permiso vence el {expires} — Permisos Digitales",
}

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,  # a missing value is a bug, never an empty line in a mail
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Letter:
    kind: str  # names the mail in logs and metrics; never the address
    subject: str
    text: str
    html: str


def letter(kind: str, **context: Any) -> Letter:
    return Letter(
        kind=kind,
        subject=SUBJECTS[kind].format(**context),
        text=_environment.get_template(f"{kind}.txt").render(**context).rstrip()
        + "\n\nPermisos Digitales\n",
        html=_environment.get_template(f"{kind}.html").render(**context),
    )
