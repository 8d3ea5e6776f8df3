"""Scrubs personal data out of free text before it reaches a log, an Event or a status message.

The portal's own messages may quote what it rejected; a CURP, an email address or a phone number
must never leave the Secret and the database, so they are masked wherever text crosses over.
"""

from __future__ import annotations

import re

_PATTERNS = (
    # CURP: 4 letters, birth date, sex, state, 3 consonants, homoclave, check digit.
    re.compile(r"\b[A-Z]{4}\d{6}[HMX][A-Z]{5}[A-Z0-9]\d\b", re.IGNORECASE),
    re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b"),
    # Ten or more digits, optionally separated, with an optional +52; not inside a code
    # like F-2026-000123, which is a folio, not a phone.
    re.compile(r"(?<![\w-])(\+?\d[\d\s().-]{8,}\d)(?![\w-])"),
)

MASK = "[redacted]"


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text
