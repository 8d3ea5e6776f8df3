"""Fictional applicants for the end-to-end test and the benchmark: each one's names, CURP, email
and phone are its own, so a leak of any of them into logs or resources can be searched for."""

from __future__ import annotations

from typing import Any

from permisos_sandbox.portal.validation import curp_check_digit

FIRST_NAMES: tuple[str, ...] = ("Anacleta", "Bonifacia", "Casimira", "Dionisia", "Eulalia")
FIRST_NAMES += ("Filomena", "Gumersinda", "Hermenegilda", "Iluminada", "Jacinta")
LAST_NAMES: tuple[str, ...] = ("Ozuna", "Peralta", "Quezada", "Renteria", "Saucedo")
LAST_NAMES += ("Tellechea", "Urquidi", "Villasenor", "Yanez", "Zavaleta")
MATERNAL_NAMES: tuple[str, ...] = ("Abundiz", "Barbosa", "Cisneros", "Dorantes", "Echeverria")
MATERNAL_NAMES += ("Fajardo", "Galindo", "Hinojosa", "Iturbide", "Jaramillo")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def fictional_person(i: int, tag: str) -> dict[str, Any]:
    """Applicant number `i` of a run called `tag` (an application body without plates): its
    CURP (valid check digit), email and phone differ for every `i` below 468; names repeat
    every ten."""
    curp17 = f"GOD{LETTERS[i % 26]}5612{10 + (i // 26) % 18:02d}HDFRRN0"
    return {
        "first_name": FIRST_NAMES[i % 10],
        "last_name": LAST_NAMES[i % 10],
        "maternal_surname": MATERNAL_NAMES[i % 10],
        "curp": curp17 + str(curp_check_digit(curp17)),
        "email": f"{tag}-{i}@example.com",
        # Digits with no run of zeros: "5500000000" is also in metric values like 0.0055000000001.
        "phone": f"55{10_000_000 + (i * 48_271 + 13_579_246) % 90_000_000:08d}",
        "make": "nissan",
        "line": "versa",
        "service_type": "particular",
        "model_year": 2022,
    }
