"""Where a paid application's permit is, told to the applicant in Spanish (the site says tú):
its phase, and while it waits the reason the operator gives (the PermitRequest's Admitted
condition), its place in line and its estimated start, in Mexico City time."""

from __future__ import annotations

from datetime import datetime

from .es_mx import mexico_city_clock

PORTAL_DOWN = ("PortalUnavailable", "PortalChanged", "Probing", "PortalRecovering")


def wait_message(
    reason: str | None, position: int | None, estimated: datetime | None
) -> str | None:
    """None when the permit is not waiting."""
    if reason is None:
        return None
    place = f"Tu trámite es el número {position} en la fila. " if position else ""
    start = f"Inicio estimado: {mexico_city_clock(estimated)}." if estimated else ""
    if reason == "MaintenanceWindow":
        until = f" Continuará a partir del {mexico_city_clock(estimated)}." if estimated else ""
        return f"El portal del gobierno está en mantenimiento.{until}".strip()
    if reason == "RateLimited":
        return f"El portal del gobierno nos pidió esperar un momento. {place}{start}".strip()
    if reason in PORTAL_DOWN:
        return (
            "El portal del gobierno no está disponible por ahora; tu trámite continuará en "
            f"cuanto se restablezca. {place}".strip()
        )
    if reason == "BackingOff":
        return "El intento anterior no se completó; lo intentaremos de nuevo en unos minutos."
    if reason == "PoolFull":
        return f"{place}{start}".strip() or "Tu trámite está en la fila."
    return "Tu trámite está en espera de ser procesado."


# Each phase of the PermitRequest (shared/DESIGN.md), as the applicant follows it.
PHASES = {
    "Pending": "Recibimos tu pago; estamos preparando tu trámite.",
    "Queued": "Tu trámite está en la fila para el portal del gobierno.",
    "Running": "Estamos tramitando tu permiso en el portal del gobierno.",
    "Retrying": "El intento anterior no se completó; lo intentaremos de nuevo.",
    "Succeeded": "Tu permiso fue emitido.",
    "Failed": "No fue posible obtener tu permiso en el portal del gobierno.",
    "Cancelled": "El trámite de tu permiso se canceló.",
}


def phase_message(phase: str | None) -> str | None:
    """None before the permit exists (the application's status says enough then)."""
    return PHASES.get(phase or "") if phase else None
