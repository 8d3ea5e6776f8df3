"""Health, readiness, metrics, logs, problem documents for framework errors, OpenAPI, outages."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

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
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), (method, path)
            # A success, or a redirect to one (the presigned permit download).
            assert any(code.startswith(("2", "307")) for code in op["responses"]), (method, path)
            if path.startswith("/v1/"):
                problems = [c for c in op["responses"] if c[0] in "45"]
                assert problems, (method, path)
                for code in problems:
                    content = op["responses"][code]["content"]
                    assert "application/problem+json" in content, (method, path, code)
    schemas = doc["components"]["schemas"]
    for name in ("ApplicationIn", "ApplicationOut", "LoginIn", "LoginOut", "RegisterIn"):
        assert schemas[name].get("examples"), name


async def test_database_outage_answers_503_and_recovers(api: Api, make_user: Make) -> None:
    user: User = await make_user()
    proxy = DatabaseProxy(api.settings.database_url)
    await proxy.start()
    url = proxy.url
    client = api.client(api.app(database_url=url, database_connect_timeout_seconds=1))
    headers = user.bearer()
    assert (await client.get("/v1/applications", headers=headers)).status_code == 200

    await proxy.stop()
    r = await client.get("/v1/applications", headers=headers)
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/service-unavailable") and r.headers["retry-after"]
    r = await client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["database"]["status"] == "failed"

    await proxy.start()  # same port: the database is back
    try:
        assert (await client.get("/v1/applications", headers=headers)).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
    finally:
        await proxy.stop()
