"""Applications: create, list, get, patch, cancel; validation answered as problem documents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import APPLICATION, BAD_CURP, PASSWORD, Api, User, register_and_verify

Make = Callable[..., Any]


def errors_of(r: Any) -> dict[str, str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "https://permisosdigitales.mx/problems/validation-error"
    assert body["status"] == 422 and body["title"] and body["instance"]
    return {e["field"]: e["rule"] for e in body["errors"]}


async def test_create_normalizes_and_prices(make_user: Make) -> None:
    user: User = await make_user()
    r = await user.client.post(
        "/v1/applications", json=APPLICATION, headers={"X-CSRF-Token": user.csrf}
    )
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["status"] == "draft"
    assert app["plates"] == "JKL4821"
    assert app["make"] == "Nissan" and app["line"] == "Versa"
    assert app["phone"] == "5512345678"
    assert app["amount_centavos"] == 150000 and app["currency"] == "MXN"
    assert app["created_at"].endswith(("Z", "+00:00"))

    r = await user.client.post(
        "/v1/applications",
        json={**APPLICATION, "service_type": "carga", "make": "FOR", "line": "FOR-02", "vin": ""},
        headers=user.bearer(),
    )
    assert r.status_code == 201
    assert r.json()["amount_centavos"] == 280000 and r.json()["line"] == "Ranger"
    assert r.json()["vin"] is None


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("curp", BAD_CURP, "curp_check_digit"),
        ("curp", "XXXX", "curp_format"),
        ("plates", "AB-C", "plates_format"),
        ("plates", "ABCDEFG", "plates_format"),
        ("line", "Corolla", "line_of_make"),
        ("make", "Ferrari", "make_unknown"),
        ("model_year", 1979, "model_year_range"),
        ("model_year", datetime.now(UTC).year + 2, "model_year_range"),
        ("vin", "3N1CN7AP5KL812345", "vin_check_digit"),
        ("vin", "1HGCM82633A00435", "vin_format"),
        ("phone", "12345", "phone_format"),
        ("email", "nope", "email_format"),
        ("first_name", "R2-D2", "name_format"),
        ("service_type", "taxi", "literal_error"),
    ],
)
async def test_validation_names_field_and_rule(
    make_user: Make, field: str, value: Any, rule: str
) -> None:
    user: User = await make_user()
    r = await user.client.post(
        "/v1/applications", json={**APPLICATION, field: value}, headers=user.bearer()
    )
    assert errors_of(r) == {field: rule}
    assert str(value) not in r.text or field in ("service_type", "make")  # input is not echoed


async def test_missing_fields_and_bad_json(make_user: Make) -> None:
    user: User = await make_user()
    body = {k: v for k, v in APPLICATION.items() if k not in ("curp", "plates")}
    r = await user.client.post("/v1/applications", json=body, headers=user.bearer())
    assert errors_of(r) == {"curp": "missing", "plates": "missing"}
    r = await user.client.post(
        "/v1/applications",
        content=b"{not json",
        headers={**user.bearer(), "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "json_invalid"


async def test_list_get_patch_cancel(make_user: Make) -> None:
    user: User = await make_user()
    ids = []
    for _ in range(3):
        r = await user.client.post("/v1/applications", json=APPLICATION, headers=user.bearer())
        ids.append(r.json()["id"])
    r = await user.client.get("/v1/applications", params={"limit": 2})
    page = r.json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    assert [i["id"] for i in page["items"]] == ids[::-1][:2]  # newest first
    r = await user.client.get("/v1/applications", params={"limit": 2, "offset": 2})
    assert [i["id"] for i in r.json()["items"]] == [ids[0]]
    r = await user.client.get("/v1/applications", params={"limit": 0})
    assert errors_of(r) == {"limit": "greater_than_equal"}
    # Past PostgreSQL's bigint the database would refuse it: a 422 here, not a 500 there.
    r = await user.client.get("/v1/applications", params={"offset": 10**20})
    assert errors_of(r) == {"offset": "less_than_equal"}

    app_id = ids[0]
    assert (await user.client.get(f"/v1/applications/{app_id}")).json()["id"] == app_id

    h = user.bearer()
    r = await user.client.patch(
        f"/v1/applications/{app_id}",
        json={"service_type": "publico", "plates": "xyz 987"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["amount_centavos"] == 220000 and r.json()["plates"] == "XYZ987"
    # Changing only the make must keep the line consistent.
    r = await user.client.patch(f"/v1/applications/{app_id}", json={"make": "Kia"}, headers=h)
    assert errors_of(r) == {"line": "line_of_make"}
    r = await user.client.patch(
        f"/v1/applications/{app_id}", json={"make": "Kia", "line": "kia-03"}, headers=h
    )
    assert r.json()["make"] == "Kia" and r.json()["line"] == "Sportage"
    r = await user.client.patch(f"/v1/applications/{app_id}", json={"curp": BAD_CURP}, headers=h)
    assert errors_of(r) == {"curp": "curp_check_digit"}
    r = await user.client.patch(f"/v1/applications/{app_id}", json={"curp": None}, headers=h)
    assert errors_of(r) == {"curp": "required"}
    r = await user.client.patch(f"/v1/applications/{app_id}", json={"vin": None}, headers=h)
    assert r.status_code == 200 and r.json()["vin"] is None

    r = await user.client.post(f"/v1/applications/{app_id}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await user.client.post(f"/v1/applications/{app_id}/cancel", headers=h)
    assert r.status_code == 200  # idempotent
    r = await user.client.patch(
        f"/v1/applications/{app_id}", json={"phone": "5500000000"}, headers=h
    )
    assert r.status_code == 409 and r.json()["type"].endswith("/invalid-state")


async def test_unknown_and_malformed_ids(make_user: Make) -> None:
    user: User = await make_user()
    r = await user.client.get("/v1/applications/6f1c0a4e-9a4b-4c1e-8f0e-1d2b3c4d5e6f")
    assert r.status_code == 404 and r.json()["type"].endswith("/not-found")
    r = await user.client.get("/v1/applications/not-a-uuid")
    assert errors_of(r) == {"application_id": "uuid_parsing"}


async def test_autocommit_routes_hand_back_transactional_connections(
    api: Api, outbox: Path
) -> None:
    """Creating and reading an application run each statement as its own transaction; the
    connection they used must go back to the pool transactional again, or the next request's
    multi-statement work (a payment, a retry) would lose its atomicity."""
    app = api.app(database_pool_size=1)
    client = api.client(app)
    address = await register_and_verify(client, outbox)
    r = await client.post(
        "/v1/auth/login",
        json={"email": address, "password": PASSWORD, "issue_bearer": True},
    )
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    created = await client.post("/v1/applications", json=APPLICATION, headers=bearer)
    assert created.status_code == 201, created.text
    read = await client.get(f"/v1/applications/{created.json()['id']}", headers=bearer)
    assert read.status_code == 200 and read.json()["plates"] == "JKL4821"
    engine = app.state.services.engine
    assert engine.pool.checkedin() == engine.pool.size() == 1  # the one the routes used
    with engine.connect() as connection:
        assert connection.connection.driver_connection.autocommit is False
