"""The vehicle catalog (makes, lines, service types) the applicant API validates against.

It mirrors the government portal's catalog (the sandbox simulator keeps its own copy in
`permisos_sandbox/portal/catalog.py`, which production must never import): an application the API
accepts must be one the portal accepts, or a paid permit would fail for good; a test
(tests/test_shared.py) keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Line:
    clave: str
    name: str


@dataclass(frozen=True)
class Make:
    clave: str
    name: str
    lines: tuple[Line, ...]


def _make(clave: str, name: str, *lines: str) -> Make:
    entries = tuple(Line(f"{clave}-{n:02d}", line) for n, line in enumerate(lines, start=1))
    return Make(clave, name, entries)


MAKES: tuple[Make, ...] = (
    _make("NIS", "Nissan", "Versa", "Sentra", "March", "NP300"),
    _make("CHE", "Chevrolet", "Aveo", "Onix", "Spark", "Silverado"),
    _make("VW", "Volkswagen", "Jetta", "Vento", "Polo", "Saveiro"),
    _make("TOY", "Toyota", "Corolla", "Yaris", "Hilux", "RAV4"),
    _make("KIA", "Kia", "Rio", "Forte", "Sportage", "Seltos"),
    _make("FOR", "Ford", "Figo", "Ranger", "Escape", "Lobo"),
)

SERVICE_TYPES: tuple[str, ...] = ("particular", "publico", "carga")

# The portal offers next year's models and the thirty before this year.
MODEL_YEAR_SPAN = 30


def model_year_range(now: datetime | None = None) -> tuple[int, int]:
    """Oldest and newest model year the portal accepts, inclusive."""
    year = (now or datetime.now(UTC)).year
    return year - MODEL_YEAR_SPAN, year + 1


def find_make(value: str) -> Make | None:
    """By clave or by name, case-insensitively."""
    wanted = value.strip().casefold()
    for make in MAKES:
        if wanted in (make.clave.casefold(), make.name.casefold()):
            return make
    return None


def find_line(make: Make, value: str) -> Line | None:
    wanted = value.strip().casefold()
    for line in make.lines:
        if wanted in (line.clave.casefold(), line.name.casefold()):
            return line
    return None
