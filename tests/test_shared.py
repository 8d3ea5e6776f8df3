"""The shared contract pieces: the attempt result and the personal-data scrubber."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from permisos.attempt_result import AttemptResult
from permisos.redact import redact

ARTIFACT = {"kind": "permit", "key": "permits/a/permit-F1.pdf", "sha256": "f" * 64, "bytes": 9}


def test_a_result_round_trips_through_the_termination_message() -> None:
    result = AttemptResult(
        outcome="succeeded", reason="PermitIssued", folio="F1", artifacts=[ARTIFACT]
    )
    assert AttemptResult.model_validate_json(result.to_message()) == result
    assert result.exit_code == 0


def test_a_success_without_documents_is_not_a_result() -> None:
    with pytest.raises(ValidationError, match="folio and artifacts"):
        AttemptResult(outcome="succeeded", reason="PermitIssued")


def test_a_result_over_four_kib_is_refused() -> None:
    result = AttemptResult(
        outcome="retryable", reason="PortalTimeout", timings={f"s{i}": 1.0 for i in range(400)}
    )
    with pytest.raises(ValueError, match="4 KiB"):
        result.to_message()


@pytest.mark.parametrize(
    "text",
    [
        "CURP GODE561231HDFRRN09 no válida",
        "correo juan.perez+x@example.com.mx rechazado",
        "teléfono +52 55 1234 5678 inválido",
        "tel 5512345678",
    ],
)
def test_personal_data_is_masked(text: str) -> None:
    masked = redact(text)
    assert "[redacted]" in masked
    for secret in ("GODE561231HDFRRN09", "juan.perez", "1234 5678", "5512345678"):
        assert secret not in masked


def test_plates_and_folios_survive() -> None:
    assert redact("placas ABC1234 ya tienen el folio F-2026-000123") == (
        "placas ABC1234 ya tienen el folio F-2026-000123"
    )


def test_the_api_catalog_matches_the_portal_simulators() -> None:
    """The API's catalog is its copy of the portal's (an external system, simulated here); an
    application the API accepts must be one the portal accepts, so the two must agree."""
    from permisos import catalog
    from permisos_sandbox.portal import catalog as portal

    ours = {(m.clave, m.name, tuple((ln.clave, ln.name) for ln in m.lines)) for m in catalog.MAKES}
    theirs = {
        (m.clave, m.nombre, tuple((ln.clave, ln.nombre) for ln in m.lineas)) for m in portal.MAKES
    }
    assert ours == theirs
    assert tuple(entry.clave for entry in portal.SERVICE_TYPES) == catalog.SERVICE_TYPES
    low, high = catalog.model_year_range()
    assert (low, high) == (min(portal.model_years()), max(portal.model_years()))


def test_the_database_engine_refuses_anything_but_postgresql() -> None:
    from permisos.database import make_database_engine

    with pytest.raises(ValueError, match=r"a PostgreSQL URL is needed .* not sqlite"):
        make_database_engine(
            "sqlite:///permisos.db", pool_size=1, max_overflow=0, connect_timeout_seconds=1
        )
