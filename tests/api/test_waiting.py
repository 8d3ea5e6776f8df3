"""The applicant's words for why a permit waits (the PermitRequest's Admitted reason)."""

from __future__ import annotations

from datetime import UTC, datetime

from permisos import resources
from permisos_api.waiting import PHASES, phase_message, wait_message

START = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)  # 06:00 in Mexico City


def test_each_reason_in_the_applicants_words() -> None:
    assert wait_message(None, None, None) is None
    assert wait_message("PoolFull", 3, START) == (
        "Tu trámite es el número 3 en la fila. Inicio estimado: 08/12/2026 a las 06:00 "
        "(hora del centro de México)."
    )
    assert wait_message("PoolFull", None, None) == "Tu trámite está en la fila."
    assert "mantenimiento" in (wait_message("MaintenanceWindow", None, None) or "")
    for reason in ("PortalUnavailable", "PortalChanged", "Probing", "PortalRecovering"):
        said = wait_message(reason, 4, START) or ""
        assert said.startswith("El portal del gobierno no está disponible por ahora")
        assert "número 4" in said
    assert "esperar" in (wait_message("RateLimited", 1, START) or "")
    assert "intentaremos de nuevo" in (wait_message("BackingOff", None, None) or "")
    assert wait_message("PoolNotFound", None, None) == "Tu trámite está en espera de ser procesado."


def test_each_phase_in_the_applicants_words() -> None:
    assert phase_message(None) is None
    assert phase_message("Queued") == "Tu trámite está en la fila para el portal del gobierno."
    assert phase_message("Running") == "Estamos tramitando tu permiso en el portal del gobierno."
    assert "intentaremos de nuevo" in (phase_message("Retrying") or "")
    # Every phase of the PermitRequest's schema has its words.
    assert set(PHASES) == set(resources.PHASES)
