"""How the applicant reads money and moments: pesos with centavos, and Mexico City's clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

# Mexico City has kept UTC-6 all year since 2022; a fixed offset needs no tz database in the image.
MEXICO_CITY = timezone(timedelta(hours=-6), "America/Mexico_City")


def pesos(centavos: int) -> str:
    """`$1,500.00 MXN`."""
    return f"${centavos // 100:,}.{centavos % 100:02d} MXN"


def mexico_city_clock(moment: datetime) -> str:
    """`08/12/2026 a las 06:00 (hora del centro de México)`."""
    local = moment.astimezone(MEXICO_CITY)
    return f"{local:%d/%m/%Y} a las {local:%H:%M} (hora del centro de México)"
