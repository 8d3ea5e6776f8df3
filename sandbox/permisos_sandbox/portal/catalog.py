"""The vehicle catalog behind the make and line selects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Entry:
    clave: str
    nombre: str


@dataclass(frozen=True)
class Make:
    clave: str
    nombre: str
    lineas: tuple[Entry, ...]


def _make(clave: str, nombre: str, *lineas: str) -> Make:
    entries = tuple(Entry(f"{clave}-{n:02d}", linea) for n, linea in enumerate(lineas, start=1))
    return Make(clave, nombre, entries)


MAKES: tuple[Make, ...] = (
    _make("NIS", "Nissan", "Versa", "Sentra", "March", "NP300"),
    _make("CHE", "Chevrolet", "Aveo", "Onix", "Spark", "Silverado"),
    _make("VW", "Volkswagen", "Jetta", "Vento", "Polo", "Saveiro"),
    _make("TOY", "Toyota", "Corolla", "Yaris", "Hilux", "RAV4"),
    _make("KIA", "Kia", "Rio", "Forte", "Sportage", "Seltos"),
    _make("FOR", "Ford", "Figo", "Ranger", "Escape", "Lobo"),
)

SERVICE_TYPES: tuple[Entry, ...] = (
    Entry("particular", "Particular"),
    Entry("publico", "Público"),
    Entry("carga", "Carga"),
)


def model_years(now: datetime | None = None) -> list[int]:
    """Newest first: next year's models are on sale from the middle of the year."""
    year = (now or datetime.now(UTC)).year
    return list(range(year + 1, year - 31, -1))


def find_make(value: str) -> Make | None:
    """By clave, or by visible name case-insensitively (a client may post either)."""
    wanted = value.strip().casefold()
    for make in MAKES:
        if wanted in (make.clave.casefold(), make.nombre.casefold()):
            return make
    return None


def find_line(make: Make, value: str) -> Entry | None:
    wanted = value.strip().casefold()
    for line in make.lineas:
        if wanted in (line.clave.casefold(), line.nombre.casefold()):
            return line
    return None


def find_any_line(value: str) -> Entry | None:
    for make in MAKES:
        line = find_line(make, value)
        if line is not None:
            return line
    return None


def service_name(clave: str) -> str | None:
    for entry in SERVICE_TYPES:
        if entry.clave == clave:
            return entry.nombre
    return None
