"""Every endpoint by anonymous, the owner, another client and an admin: the expected status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends

from permisos_api.auth import Principal, require_role
from permisos_api.models import Role
from tests.api.conftest import APPLICATION, Api, User

Make = Callable[..., Any]

# (method, path template, body, {caller: status}); {app} and {session} are the owner's.
MATRIX: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/v1/auth/session", None, {"anon": 401, "owner": 200, "other": 200, "admin": 200}),
    ("GET", "/v1/auth/sessions", None, {"anon": 401, "owner": 200, "other": 200, "admin": 200}),
    ("GET", "/v1/applications", None, {"anon": 401, "owner": 200, "other": 200, "admin": 200}),
    (
        "POST",
        "/v1/applications",
        APPLICATION,
        {"anon": 401, "owner": 201, "other": 201, "admin": 201},
    ),
    (
        "GET",
        "/v1/applications/{app}",
        None,
        {"anon": 401, "owner": 200, "other": 404, "admin": 200},
    ),
    (
        "PATCH",
        "/v1/applications/{app}",
        {"phone": "5511112222"},
        {"anon": 401, "owner": 200, "other": 404, "admin": 403},
    ),
    (
        "POST",
        "/v1/applications/{app}/cancel",
        None,
        {"anon": 401, "owner": 200, "other": 404, "admin": 403},
    ),
    (
        "DELETE",
        "/v1/auth/sessions/{session}",
        None,
        {"anon": 401, "other": 404, "admin": 404, "owner": 204},
    ),
    ("POST", "/v1/auth/logout", None, {"anon": 401, "owner": 204, "other": 204, "admin": 204}),
    (
        "GET",
        "/v1/applications/{app}/payments",
        None,
        {"anon": 401, "owner": 200, "other": 404, "admin": 200},
    ),
    # Not paid yet: the owner and an admin learn the permit is not ready; others learn nothing.
    (
        "GET",
        "/v1/applications/{app}/permits",
        None,
        {"anon": 401, "owner": 409, "other": 404, "admin": 409},
    ),
    (
        "GET",
        "/v1/applications/{app}/permits/permit",
        None,
        {"anon": 401, "owner": 409, "other": 404, "admin": 409},
    ),
    ("GET", "/v1/me/export", None, {"anon": 401, "owner": 200, "other": 200, "admin": 200}),
    # Without the password nobody's account goes (the real deletion is in test_privacy).
    ("DELETE", "/v1/me", None, {"anon": 401, "owner": 422, "other": 422, "admin": 422}),
]

PUBLIC = [
    ("GET", "/healthz", 200),
    ("GET", "/readyz", 200),
    ("GET", "/metrics", 200),
    ("GET", "/openapi.json", 200),
    ("POST", "/v1/auth/password-reset/request", 202),
    ("POST", "/v1/auth/verify", 400),
    ("GET", "/v1/auth/verify?token=x.y", 400),
    ("POST", "/v1/auth/password-reset/confirm", 400),
]


async def test_matrix(api: Api, make_user: Make) -> None:
    owner: User = await make_user()
    other: User = await make_user()
    admin: User = await make_user("admin")
    anon = api.client()

    for method, template, body, expected in MATRIX:
        # Fresh objects per row, so a cancel or a revocation never changes the next row.
        created = await owner.client.post(
            "/v1/applications", json=APPLICATION, headers=owner.bearer()
        )
        login = await api.client().post(
            "/v1/auth/login",
            json={"email": owner.email, "password": "Correcto-caballo-42", "issue_bearer": True},
        )
        path = template.format(app=created.json()["id"], session=login.json()["session"]["id"])
        for caller, status in expected.items():
            if caller == "anon":
                r = await anon.request(method, path, json=body)
            else:
                user = {"owner": owner, "other": other, "admin": admin}[caller]
                if method == "POST" and path == "/v1/auth/logout":
                    # Logging out ends the session used: do it with a throwaway one.
                    fresh = await api.client().post(
                        "/v1/auth/login",
                        json={
                            "email": user.email,
                            "password": "Correcto-caballo-42",
                            "issue_bearer": True,
                        },
                    )
                    headers = {"Authorization": f"Bearer {fresh.json()['token']}"}
                else:
                    headers = user.bearer()
                r = await user.client.request(method, path, json=body, headers=headers)
            assert r.status_code == status, (method, template, caller, r.text)
            if status >= 400:
                assert r.headers["content-type"].startswith("application/problem+json")

    for method, path, status in PUBLIC:
        body = {"email": "nobody@example.com"} if "request" in path else None
        if path.endswith(("/verify", "/confirm")):
            body = {"token": "x.y", "password": "Correcto-caballo-42"}
        r = await anon.request(method, path, json=body)
        assert r.status_code == status, (method, path, r.text)


async def test_require_role_admits_superadmin(api: Api, make_user: Make) -> None:
    owner: User = await make_user()
    boss: User = await make_user("superadmin")
    created = await owner.client.post("/v1/applications", json=APPLICATION, headers=owner.bearer())
    r = await boss.client.get(f"/v1/applications/{created.json()['id']}", headers=boss.bearer())
    assert r.status_code == 200
    who = await boss.client.get("/v1/auth/session", headers=boss.bearer())
    assert who.json()["user"]["role"] == "superadmin"


async def test_disabled_account_is_refused(api: Api, make_user: Make) -> None:
    import psycopg

    user: User = await make_user()
    dsn = api.settings.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET disabled_at = now() WHERE email = %s", (user.email,))
    r = await user.client.get("/v1/auth/session", headers=user.bearer())
    assert r.status_code == 403 and r.json()["type"].endswith("/account-disabled")


async def test_require_role_dependency(api: Api, make_user: Make) -> None:
    app = api.app()

    def staff_only(
        principal: Annotated[Principal, Depends(require_role(Role.admin, Role.superadmin))],
    ) -> dict[str, str]:
        return {"role": principal.user.role}

    app.add_api_route("/staff-only", staff_only)  # what the admin endpoints will declare
    client: User = await make_user()
    admin: User = await make_user("admin")
    anon = api.client(app)
    assert (await anon.get("/staff-only")).status_code == 401
    assert (await anon.get("/staff-only", headers=client.bearer())).status_code == 403
    r = await anon.get("/staff-only", headers=admin.bearer())
    assert r.status_code == 200 and r.json() == {"role": "admin"}
