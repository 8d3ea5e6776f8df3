"""The portal's own rules: CURP format and check digit, plates, catalog lookups."""

from __future__ import annotations

import pytest

from permisos_sandbox.portal import catalog
from permisos_sandbox.portal.validation import (
    curp_check_digit,
    curp_is_valid,
    normalize_plates,
    validate_vehicle,
)

from .conftest import VALID_CURP


def test_published_curp_is_valid_and_its_check_digit_matters() -> None:
    assert curp_is_valid(VALID_CURP)
    assert curp_check_digit(VALID_CURP[:17]) == 4
    for digit in "012356789":
        assert not curp_is_valid(VALID_CURP[:17] + digit)


@pytest.mark.parametrize(
    "curp",
    [
        "hegg560427mvzrrl04",  # the form upper-cases before checking; the rule does not
        "HEGG560427MXXRRL04",  # no such state
        "HEGG560431MVZRRL0",  # 17 characters
        "HEGG560427ZVZRRL04",  # sex must be H, M or X
        "1EGG560427MVZRRL04",
    ],
)
def test_malformed_curps_are_rejected(curp: str) -> None:
    assert not curp_is_valid(curp)


def test_check_digit_counts_enye_in_the_dictionary() -> None:
    # Ñ sits between N and O, so O is worth 25, not 24 as in a plain A-Z table.
    first17 = "AOAA000101HDFBBBO"
    dictionary = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
    total = sum(dictionary.index(c) * (18 - i) for i, c in enumerate(first17))
    naive = sum(dictionary.replace("Ñ", "").index(c) * (18 - i) for i, c in enumerate(first17))
    assert curp_check_digit(first17) == (10 - total % 10) % 10
    assert curp_check_digit(first17) != (10 - naive % 10) % 10


def test_plates_are_normalized() -> None:
    assert normalize_plates(" abc-123 4 ") == "ABC1234"


def test_catalog_has_makes_with_lines_matched_by_name_or_key() -> None:
    assert len(catalog.MAKES) >= 6
    assert all(len(make.lineas) >= 4 for make in catalog.MAKES)
    nissan = catalog.find_make("nissan")
    assert nissan is not None and catalog.find_make("NIS") is nissan
    line = catalog.find_line(nissan, "versa")
    assert line is not None and line.clave == "NIS-01"
    chevrolet = catalog.find_make("Chevrolet")
    assert chevrolet is not None and catalog.find_line(chevrolet, "Versa") is None


def test_vehicle_rules_without_http() -> None:
    years = catalog.model_years()
    result = validate_vehicle(
        {
            "marca": "Ford",
            "linea": "Ranger",
            "tipo_servicio": "carga",
            "ano_modelo": "2020",
            "placas": "ab-12-345",
            "niv": "3VWFE21C04M000001",
        },
        plates_taken=lambda plates: False,
        years=years,
    )
    assert result.ok, result.errors
    assert result.values["marca"] == "FOR" and result.values["placas"] == "AB12345"
    bad_niv = validate_vehicle(
        {
            "marca": "FOR",
            "linea": "FOR-02",
            "tipo_servicio": "carga",
            "ano_modelo": "2020",
            "placas": "AB12345",
            "niv": "IOQ",
        },
        plates_taken=lambda plates: plates == "AB12345",
        years=years,
    )
    assert set(bad_niv.errors) == {"niv", "placas"}
