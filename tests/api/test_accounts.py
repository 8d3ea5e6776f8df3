"""Registration, verification by mail, login, sessions, CSRF, logout and password reset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.api.conftest import (
    PASSWORD,
    Api,
    link_token,
    login,
    read_mail,
    register_and_verify,
    unique_email,
)

PROBLEM = "application/problem+json"


def problem_type(r: Any) -> str:
    assert r.headers["content-type"].startswith(PROBLEM), r.text
    return str(r.json()["type"]).rsplit("/", 1)[-1]


async def test_register_verify_login_cookie_session(api: Api, outbox: Path) -> None:
    client = api.client()
    address = unique_email("Juana")
    r = await client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    assert r.status_code == 202
    stored = address.lower()

    # Not verified yet: the right password still does not log in.
    r = await login(client, address)
    assert r.status_code == 403 and problem_type(r) == "email-not-verified"

    [msg] = read_mail(outbox, stored)
    assert msg["Subject"] and msg["Message-ID"] and msg["Date"] and msg["From"]
    token = link_token(msg, "/verificar")
    r = await client.post("/v1/auth/verify", json={"token": token})
    assert r.status_code == 200 and r.json() == {"status": "verified"}
    r = await client.get("/v1/auth/verify", params={"token": token})  # second click is fine
    assert r.status_code == 200
    r = await client.get("/v1/auth/verify", params={"token": token[:-3] + "AAA"})
    assert r.status_code == 400 and problem_type(r) == "invalid-token"

    r = await login(client, address.upper())  # email is case-insensitive
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] is None and body["user"]["email"] == stored
    cookies = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("permisos_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("permisos_csrf="))
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/", "Max-Age="):
        assert flag.lower() in session_cookie.lower()
    assert "httponly" not in csrf_cookie.lower() and "secure" in csrf_cookie.lower()
    assert f"permisos_csrf={body['csrf_token']}" in csrf_cookie

    r = await client.get("/v1/auth/session")
    assert r.status_code == 200
    assert r.json()["authenticated_by"] == "cookie"
    assert r.json()["csrf_token"] == body["csrf_token"]

    # The token is stored only as its digest.
    dsn = api.settings.database_url.replace("postgresql+psycopg", "postgresql")
    token_value = client.cookies["permisos_session"]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT token_sha256 FROM sessions").fetchall()
    assert all(token_value not in row[0] for row in rows)


async def test_csrf_for_cookies_not_for_bearer(api: Api, outbox: Path) -> None:
    client = api.client()
    address = await register_and_verify(client, outbox)
    csrf = (await login(client, address)).json()["csrf_token"]
    app = {
        "first_name": "Ana",
        "last_name": "Ruiz",
        "curp": "GODE561231HDFRRN00",
        "email": address,
        "phone": "5512345678",
        "plates": "ABC1234",
        "make": "Kia",
        "line": "Rio",
        "service_type": "particular",
        "model_year": 2020,
    }
    r = await client.post("/v1/applications", json=app)
    assert r.status_code == 403 and problem_type(r) == "csrf-failed"
    r = await client.post("/v1/applications", json=app, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    r = await client.post("/v1/applications", json=app, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    # Safe methods need no token.
    assert (await client.get("/v1/applications")).status_code == 200

    bearer_client = api.client()
    r = await bearer_client.post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    assert r.status_code == 200 and "set-cookie" not in r.headers
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    r = await bearer_client.post("/v1/applications", json=app, headers=headers)
    assert r.status_code == 201
    who = await bearer_client.get("/v1/auth/session", headers=headers)
    assert who.json()["authenticated_by"] == "bearer" and who.json()["csrf_token"] is None


async def test_logout_and_revocation(api: Api, outbox: Path) -> None:
    client = api.client()
    address = await register_and_verify(client, outbox)
    csrf = (await login(client, address)).json()["csrf_token"]
    other = api.client()
    r = await other.post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    bearer_session = r.json()["session"]["id"]

    r = await client.get("/v1/auth/sessions")
    items = r.json()["items"]
    assert len(items) == 2 and sum(item["current"] for item in items) == 1

    # Revoke the Bearer session from the cookie session.
    r = await client.delete(f"/v1/auth/sessions/{bearer_session}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    r = await other.get("/v1/auth/session", headers=bearer)
    assert r.status_code == 401 and problem_type(r) == "authentication-required"
    assert "www-authenticate" in r.headers

    # Logout needs the CSRF token too, clears cookies and ends the session server-side.
    kept = client.cookies["permisos_session"]
    assert (await client.post("/v1/auth/logout")).status_code == 403
    r = await client.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert any("permisos_session=" in c for c in r.headers.get_list("set-cookie"))
    replay = api.client()
    r = await replay.get("/v1/auth/session", headers={"Authorization": f"Bearer {kept}"})
    assert r.status_code == 401


async def test_session_expiry(api: Api, outbox: Path) -> None:
    app = api.app(session_ttl_seconds=1)
    client = api.client(app)
    address = await register_and_verify(client, outbox)
    r = await client.post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await client.get("/v1/auth/session", headers=headers)).status_code == 200
    dsn = api.settings.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn, autocommit=True) as conn:  # time travel instead of sleeping
        conn.execute(
            "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = %s",
            (r.json()["session"]["id"],),
        )
    assert (await client.get("/v1/auth/session", headers=headers)).status_code == 401


async def test_password_policy(api: Api) -> None:
    client = api.client()
    address = unique_email()
    cases = {
        "short1A": "password_too_short",
        "alllowercaseletters": "password_one_class",
        address: "password_is_email",
        "contrasena1234": "password_common",
    }
    for password, rule in cases.items():
        r = await client.post("/v1/auth/register", json={"email": address, "password": password})
        assert r.status_code == 422, password
        assert r.json()["errors"] == [
            {"field": "password", "rule": rule, "detail": r.json()["errors"][0]["detail"]}
        ]
    r = await client.post("/v1/auth/register", json={"email": "not-an-email", "password": PASSWORD})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email"


async def test_register_existing_is_indistinguishable(api: Api, outbox: Path) -> None:
    client = api.client()
    address = await register_and_verify(client, outbox)
    r = await client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    assert r.status_code == 202
    fresh = await client.post(
        "/v1/auth/register", json={"email": unique_email(), "password": PASSWORD}
    )
    assert fresh.json() == r.json()
    assert "Ya tienes una cuenta" in str(read_mail(outbox, address)[-1]["Subject"])


async def test_password_reset(api: Api, outbox: Path) -> None:
    client = api.client()
    address = await register_and_verify(client, outbox)
    r = await client.post(
        "/v1/auth/login", json={"email": address, "password": PASSWORD, "issue_bearer": True}
    )
    old_session = {"Authorization": f"Bearer {r.json()['token']}"}

    unknown = unique_email()
    r_unknown = await client.post("/v1/auth/password-reset/request", json={"email": unknown})
    r = await client.post("/v1/auth/password-reset/request", json={"email": address})
    assert r.status_code == r_unknown.status_code == 202
    assert r.json() == r_unknown.json()
    assert read_mail(outbox, unknown) == []
    token = link_token(read_mail(outbox, address)[-1], "/restablecer")

    r = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": "short"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "password_too_short"
    new_password = "Otro-caballo-correcto-7"
    r = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": new_password}
    )
    assert r.status_code == 204
    # Spent: the token is bound to the old password hash.
    r = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": "Tercer-caballo-9x"}
    )
    assert r.status_code == 400 and problem_type(r) == "invalid-token"
    # A verification token is no reset token: the purpose is inside the signature.
    verify_token = link_token(read_mail(outbox, address)[0], "/verificar")
    r = await client.post(
        "/v1/auth/password-reset/confirm", json={"token": verify_token, "password": "Cuarto-9x-abc"}
    )
    assert r.status_code == 400
    assert (await client.get("/v1/auth/session", headers=old_session)).status_code == 401
    assert (await login(client, address)).status_code == 401
    r = await client.post("/v1/auth/login", json={"email": address, "password": new_password})
    assert r.status_code == 200


async def test_rehash_when_parameters_change(api: Api, outbox: Path) -> None:
    client = api.client()
    address = await register_and_verify(client, outbox)
    dsn = api.settings.database_url.replace("postgresql+psycopg", "postgresql")

    def stored() -> str:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT password_hash FROM users WHERE email = %s", (address,))
            return str(row.fetchone()[0])  # type: ignore[index]

    before = stored()
    assert before.startswith("$argon2id$") and "t=1" in before
    stronger = api.client(api.app(argon2_time_cost=2))
    assert (await login(stronger, address)).status_code == 200
    after = stored()
    assert after != before and "t=2" in after
    assert (await login(stronger, address)).status_code == 200
