"""Vehicle identification numbers (ISO 3779). python-stdnum has no VIN module, hence this one."""

from __future__ import annotations

import re

VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")  # I, O and Q are never used
_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(vin: str) -> str:
    total = sum(_VALUES[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def is_north_american(vin: str) -> bool:
    """World manufacturer codes 1-5 (USA, Canada, Mexico): the check digit is mandatory there."""
    return vin[0] in "12345"


def problem(vin: str) -> tuple[str, str] | None:
    """(rule, detail) when the VIN is not valid, else None."""
    if not VIN_RE.match(vin):
        return "vin_format", "17 letters and digits, without I, O or Q"
    if is_north_american(vin) and vin[8] != check_digit(vin):
        return "vin_check_digit", "The VIN's check digit (9th character) does not match"
    return None
