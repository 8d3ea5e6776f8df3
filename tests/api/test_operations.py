"""Health, readiness, metrics, logs, problem documents for framework errors, OpenAPI, outages."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from permisos.logs import JsonFormatter
from tests.api.conftest import APPLICATION, CURP, Api, User
from tests.databases import DatabaseProxy

Make = Callable[..., Any]


async def test_health_and_readiness(api: Api) -> None:
    client = api.client()
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    db = r.json()["checks"]["database"]
    assert db["status"] == "ok" and db["latency_ms"] >= 0


async def test_metrics_and_logs_carry_no_personal_data(
    api: Api, make_user: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user: User = await make_user()
    r = await user.client.post("/v1/applications", json=APPLICATION, headers=user.bearer())
    app_id = r.json()["id"]
    await user.client.get(f"/v1/applications/{app_id}", headers=user.bearer())
    await user.client.post(
        "/v1/applications", json={**APPLICATION, "curp": "X"}, headers=user.bearer()
    )
    await user.client.get("/no/such/path")
    await user.client.delete("/healthz")

    text = (await user.client.get("/metrics")).text
    assert (
        'permisos_http_requests_total{method="GET",route="/v1/applications/{application_id}",'
        'status="200"}' in text
    )
    assert 'route="<unmatched>",status="404"' in text
    assert 'method="DELETE",route="/healthz",status="405"' in text
    assert "permisos_http_request_duration_seconds_bucket" in text
    # Every answered request (a 404 and a 405 among them) left the gauge: only the scrape is in.
    assert "permisos_http_requests_in_flight 1.0" in text
    assert 'permisos_applications_created_total{service_type="particular"}' in text

    # The API's own records (the test client's httpx log shows raw URLs; it is not the API).
    ours = [rec for rec in caplog.records if rec.name.startswith(("permisos", "uvicorn"))]
    lines = [JsonFormatter().format(rec) for rec in ours]
    access = [json.loads(line) for line in lines if '"route"' in line]
    assert any(
        a["route"] == "/v1/applications/{application_id}" and a["status"] == 200 for a in access
    )
    assert all(a["request_id"] and a["method"] and "duration_ms" in a for a in access)
    everything = "\n".join(lines) + text
    for secret in (CURP, user.email, "Juana", "Gómez", "5512345678", app_id):
        assert secret not in everything, secret


async def test_request_id_is_echoed(api: Api) -> None:
    client = api.client()
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123-def-456"})
    assert r.headers["x-request-id"] == "abc-123-def-456"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
    assert len(r.headers["x-request-id"]) == 32


async def test_framework_errors_are_problem_documents(api: Api) -> None:
    app = api.app()

    def boom() -> None:
        raise RuntimeError("kaboom with juana@example.com")

    app.add_api_route("/boom", boom)  # a route that fails, to see the 500 document
    client = api.client(app)
    for method, path, status, slug in [
        ("GET", "/nowhere", 404, "not-found"),
        ("PUT", "/v1/applications", 405, "method-not-allowed"),
        ("GET", "/v1/applications", 401, "authentication-required"),
        ("POST", "/v1/auth/login", 422, "validation-error"),
        ("GET", "/boom", 500, "internal-error"),
    ]:
        r = await client.request(method, path)
        assert r.status_code == status
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["type"] == f"https://permisosdigitales.mx/problems/{slug}"
        assert body["status"] == status and body["title"] and body["instance"] == path
        assert "juana" not in r.text


def test_openapi_documents_every_operation(api: Api) -> None:
    doc = api.default_app.openapi()
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # The probes and /metrics stay inside the cluster, as the Ingress keeps them.
    assert all(path.startswith("/v1/") for path in doc["paths"]), list(doc["paths"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), (method, path)
            # A success, or a redirect to one (the presigned permit download).
            assert any(code.startswith(("2", "307")) for code in op["responses"]), (method, path)
            problems = [c for c in op["responses"] if c[0] in "45"]
            assert "500" in problems, (method, path)
            if "requestBody" in op:
                assert {"400", "415", "422"} <= set(problems), (method, path)
            for code in problems:
                content = op["responses"][code]["content"]
                assert "application/problem+json" in content, (method, path, code)
    schemas = doc["components"]["schemas"]
    for name in ("ApplicationIn", "ApplicationOut", "LoginIn", "LoginOut", "RegisterIn"):
        assert schemas[name].get("examples"), name


def test_openapi_declares_how_each_operation_authenticates(api: Api) -> None:
    doc = api.default_app.openapi()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {**schemes["bearerToken"], "type": "http", "scheme": "bearer"}
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == (
        "cookie",
        "permisos_session",
    )
    assert (schemes["csrfHeader"]["in"], schemes["csrfHeader"]["name"]) == (
        "header",
        "X-CSRF-Token",
    )
    paths = doc["paths"]
    # A browser's unsafe request needs the cookie AND the CSRF header; a safe one the cookie.
    assert paths["/v1/applications"]["post"]["security"] == [
        {"bearerToken": []},
        {"sessionCookie": [], "csrfHeader": []},
    ]
    assert paths["/v1/applications"]["get"]["security"] == [
        {"bearerToken": []},
        {"sessionCookie": []},
    ]
    assert paths["/v1/admin/users/{user_id}/disable"]["post"]["security"][0] == {"bearerToken": []}
    for public in (
        ("/v1/auth/register", "post"),
        ("/v1/auth/login", "post"),
        ("/v1/catalog", "get"),
        ("/v1/webhooks/stripe", "post"),
    ):
        assert paths[public[0]][public[1]]["security"] == [], public
    # Every operation says one or the other, and each authenticated one can answer 401.
    for path, item in paths.items():
        for method, op in item.items():
            assert "security" in op, (method, path)
            if op["security"]:
                assert "401" in op["responses"], (method, path)


async def test_bodies_that_are_not_json_say_so(api: Api) -> None:
    client = api.client()
    cases = [
        (b'{"email": "a@example.com", "password": ', "application/json", 422, "json_invalid"),
        (b"email=a@example.com", "application/x-www-form-urlencoded", 415, "media_type"),
        (b'{"email": "a@example.com"}', None, 415, "media_type"),
        (b'{"email": "\xff@example.com"}', "application/json", 400, "body_unreadable"),
    ]
    for body, media, status, rule in cases:
        headers = {"content-type": media} if media else {}
        r = await client.post("/v1/auth/register", content=body, headers=headers)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["errors"] == [{"field": "body", "rule": rule, "detail": ANY}], problem
        assert "a@example.com" not in r.text  # the rejected input is never echoed
    r = await client.post(
        "/v1/auth/register",
        content=b'{"email": "a@example.com", "password": ',
        headers={"content-type": "application/json"},
    )
    assert r.json()["errors"][0]["detail"] == "Not valid JSON (at character 39)"


async def test_the_catalog_lists_what_an_application_may_name(api: Api, make_user: Make) -> None:
    r = await api.client().get("/v1/catalog")
    assert r.status_code == 200
    catalog = r.json()
    nissan = next(m for m in catalog["makes"] if m["clave"] == "NIS")
    assert nissan["name"] == "Nissan"
    assert {"clave": "NIS-01", "name": "Versa"} in nissan["lines"]
    assert {s["code"]: s["price_centavos"] for s in catalog["service_types"]} == {
        "particular": api.settings.price_particular_centavos,
        "publico": api.settings.price_publico_centavos,
        "carga": api.settings.price_carga_centavos,
    }
    year = datetime.now(UTC).year
    assert catalog["model_years"] == {"min": year - 30, "max": year + 1}

    # What the catalog lists is what an application accepts, by clave and by name.
    user: User = await make_user()
    kia = next(m for m in catalog["makes"] if m["name"] == "Kia")
    body = {
        **APPLICATION,
        "make": kia["clave"],
        "line": kia["lines"][-1]["name"],
        "model_year": catalog["model_years"]["min"],
        "service_type": "publico",
    }
    r = await user.client.post("/v1/applications", json=body, headers=user.bearer())
    assert r.status_code == 201, r.text
    assert r.json()["amount_centavos"] == api.settings.price_publico_centavos
    too_old = {**body, "model_year": catalog["model_years"]["min"] - 1}
    r = await user.client.post("/v1/applications", json=too_old, headers=user.bearer())
    assert r.status_code == 422
    assert [e["rule"] for e in r.json()["errors"]] == ["model_year_range"]


@pytest.fixture
async def through_proxy(api: Api) -> AsyncIterator[tuple[DatabaseProxy, httpx.AsyncClient]]:
    """A client of an app that reaches its database through a proxy the test cuts and restores
    on the same port (an outage); cut at the end, whatever the test left."""
    proxy = DatabaseProxy(api.settings.database_url)
    await proxy.start()
    app = api.app(database_url=proxy.url, database_connect_timeout_seconds=1)
    try:
        yield proxy, api.client(app)
    finally:
        if proxy.server is not None:
            await proxy.stop()


async def test_database_outage_answers_503_and_recovers(
    through_proxy: tuple[DatabaseProxy, httpx.AsyncClient],
    make_user: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, client = through_proxy
    user: User = await make_user()
    headers = user.bearer()
    assert (await client.get("/v1/applications", headers=headers)).status_code == 200
    assert (await client.get("/readyz")).json()["status"] == "ok"

    await proxy.stop()
    r = await client.get("/v1/applications", headers=headers)
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/service-unavailable") and r.headers["retry-after"]
    # The log tells an engineer which failure it was (the driver's class), not just "database".
    warned = [x.getMessage() for x in caplog.records if "database unavailable" in x.getMessage()]
    assert warned and warned[-1].startswith("database unavailable: OperationalError (")
    # Still ready, so the Service keeps the replica and clients get this 503 with Retry-After
    # rather than refused connections; the outage is reported.
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "degraded"
    assert r.json()["checks"]["database"]["status"] == "failed"

    await proxy.start()  # same port: the database is back
    assert (await client.get("/v1/applications", headers=headers)).status_code == 200
    assert (await client.get("/readyz")).json()["status"] == "ok"


async def test_a_process_that_never_reached_its_database_is_not_ready(
    through_proxy: tuple[DatabaseProxy, httpx.AsyncClient],
) -> None:
    """A release with a wrong database address must not roll out: not ready until it connects."""
    proxy, client = through_proxy
    await proxy.stop()  # before the app's first request: it never reached the database
    r = await client.get("/readyz")
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "failed"
    assert r.json()["checks"]["database"]["status"] == "failed"

    await proxy.start()  # same port: the database answers now
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
