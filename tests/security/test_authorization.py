"""Who may do what, generated from the app itself: every operation of its OpenAPI document and
every other route it serves (the web pages, the docs, the probes, the static files) by seven
callers → the expected status, and no leak.

The callers: anonymous; the applicant who owns the resource; another applicant; an admin; a
disabled account (on its own resources); and the owner's own sessions once expired and once
revoked (logged out). The expected statuses are written here per operation, so the test fails
when the app serves a route this table does not cover (and when the table names one the app no
longer serves). Each row runs in a world of its own (a new owner, its application, a payment,
its sessions), so what one row changes never decides the next.

Zero leaks: a caller other than the owner or an admin never gets a 2xx on the owner's
resources, and no answer to them holds any of the owner's data (email, ids, the application's
name); a logged-out caller gets 401/403 from the API (`authentication-required`,
`account-disabled`) and the login page's redirect from the web.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from permisos_api.auth import Principal, require_role
from permisos_api.models import Role
from tests.api import payments_support
from tests.api.conftest import APPLICATION, PASSWORD, Api, User, sql, unique_email
from tests.api.payments_support import Pay

Make = Callable[..., Any]
# In this order: the others meet the resource untouched, and the owner meets it before an admin
# acts on it (disables the account, say).
CALLERS = ("anonymous", "expired", "revoked", "disabled", "other", "owner", "admin")
LOGGED_OUT = ("expired", "revoked", "disabled")
WRONG_PASSWORD = "Otra-contrasena-distinta-7"
ANONYMOUS_CSRF = secrets.token_urlsafe(32)  # a visitor's double-submit token


@dataclass
class Sess:
    token: str
    csrf: str
    id: str


@dataclass
class World:
    """One row's owner (or disabled account) and what it has."""

    user_id: str
    email: str
    application: str  # a draft
    payment: str  # an OXXO voucher of a second application
    name: str  # the application's first name: a marker of its data
    spare: Sess  # another session of the account, for DELETE /v1/auth/sessions/{id}

    def markers(self) -> list[str]:
        return [self.user_id, self.email, self.application, self.payment, self.name, self.spare.id]


Body = Any  # JSON, form fields, or a function of (world, caller) giving them


@dataclass(frozen=True)
class Expect:
    """The status for the owner, another applicant and an admin (each defaulting to the
    owner's); the anonymous status, None meaning the login wall (401 problem from the API, a
    303 to /entrar from a page), which the expired, revoked and disabled callers meet too
    (`disabled` where its own account's state decides); the body or form, the query; who of
    the owner and the admin gets the resource's data in a 2xx (`shows`); whether the others'
    answers are checked for the owner's data (not where the request carries its password)."""

    owner: int
    other: int | None = None
    admin: int | None = None
    anonymous: int | None = None
    disabled: int | None = None
    body: Body = None
    query: dict[str, str] = field(default_factory=dict)
    shows: tuple[str, ...] = ()
    private: bool = True


OWN = ("owner",)  # the caller's own account, for the owner and an admin alike
BOTH = ("owner", "admin")  # the owner's resource, which an admin may read


def everyone(status: int, **kwargs: Any) -> Expect:
    return Expect(owner=status, other=status, admin=status, anonymous=status, **kwargs)


def staff(status: int, **kwargs: Any) -> Expect:
    """An admin's operation: applicants are refused (403), with no data of anyone."""
    return Expect(owner=403, other=403, admin=status, **kwargs)


def mine(owner: int, *, admin: int, **kwargs: Any) -> Expect:
    """The owner's resource: another applicant learns not even that it exists (404)."""
    return Expect(owner=owner, other=404, admin=admin, **kwargs)


def new_address(_: World, caller: str) -> dict[str, str]:
    return {"email": unique_email(f"nuevo-{caller}"), "password": PASSWORD}


def owners_login(w: World, _: str) -> dict[str, str]:
    return {"email": w.email, "password": PASSWORD}


def own_password(_: World, caller: str) -> dict[str, str]:
    """Only the owner's own password deletes an account; the others send a wrong one."""
    return {"password": PASSWORD if caller == "owner" else WRONG_PASSWORD}


def delete_form(w: World, caller: str) -> dict[str, str]:
    return {**own_password(w, caller), "confirm": "si"}


def search_form(w: World, _: str) -> dict[str, str]:
    return {"correo": w.email}


NOBODY = {"email": "nadie@example.com"}
BAD_TOKEN = {"token": "x.y", "password": PASSWORD}
FORM = {k: str(v) for k, v in APPLICATION.items()}
CONFIRMED = {"confirmo": "si"}

API: dict[tuple[str, str], Expect] = {
    ("POST", "/v1/auth/register"): everyone(202, body=new_address),
    ("GET", "/v1/auth/verify"): everyone(400, query={"token": "x.y"}),
    ("POST", "/v1/auth/verify"): everyone(400, body={"token": "x.y"}),
    ("POST", "/v1/auth/login"): everyone(200, disabled=403, body=owners_login, private=False),
    ("POST", "/v1/auth/logout"): Expect(204),
    ("POST", "/v1/auth/password-reset/request"): everyone(202, body=NOBODY),
    ("POST", "/v1/auth/password-reset/confirm"): everyone(400, body=BAD_TOKEN),
    ("GET", "/v1/auth/session"): Expect(200, shows=OWN),
    ("GET", "/v1/auth/sessions"): Expect(200),
    ("DELETE", "/v1/auth/sessions/{session_id}"): mine(204, admin=404),
    ("POST", "/v1/applications"): Expect(201, body=APPLICATION),
    ("GET", "/v1/applications"): Expect(200, shows=OWN),
    ("GET", "/v1/applications/{application_id}"): mine(200, admin=200, shows=BOTH),
    ("PATCH", "/v1/applications/{application_id}"): mine(
        200, admin=403, body={"phone": "5511112222"}, shows=OWN
    ),
    ("GET", "/v1/applications/{application_id}/permit-history"): mine(200, admin=200),
    ("POST", "/v1/applications/{application_id}/cancel"): mine(200, admin=403, shows=OWN),
    ("GET", "/v1/catalog"): everyone(200),
    # A draft: the owner and an admin learn the permit is not ready; others learn nothing.
    ("GET", "/v1/applications/{application_id}/permits"): mine(409, admin=409),
    ("GET", "/v1/applications/{application_id}/permits/{kind}"): mine(409, admin=409),
    ("GET", "/v1/me/export"): Expect(200, shows=OWN),
    # A voucher is in flight: the owner is told to wait; the others' own passwords are wrong.
    ("DELETE", "/v1/me"): Expect(409, other=401, admin=401, body=own_password),
    ("POST", "/v1/applications/{application_id}/payments"): mine(
        201, admin=403, body={"method": "oxxo"}
    ),
    ("GET", "/v1/applications/{application_id}/payments"): mine(200, admin=200),
    ("POST", "/v1/webhooks/stripe"): everyone(400, body={"type": "payment_intent.succeeded"}),
    ("GET", "/v1/admin/applications"): staff(200, query={"status": "draft"}),
    ("GET", "/v1/admin/applications/{application_id}"): staff(200, shows=("admin",)),
    # Neither a failed permit nor a refundable payment: past the role check, refused by state.
    ("POST", "/v1/admin/applications/{application_id}/retry-permit"): staff(409),
    ("POST", "/v1/admin/applications/{application_id}/refund"): staff(409),
    ("GET", "/v1/admin/refunds/manual"): staff(200),
    ("POST", "/v1/admin/payments/{payment_id}/manual-refund"): staff(409),
    ("POST", "/v1/admin/users/{user_id}/disable"): staff(200),
    ("POST", "/v1/admin/users/{user_id}/enable"): staff(200),
}

# Pages send a visitor they do not know to /entrar (303); an applicant at the console is told
# "Sin acceso" (403); another applicant's application is "No encontrada" (404), for an admin too
# (the console has its own page for it).
WEB: dict[tuple[str, str], Expect] = {
    ("GET", "/openapi.json"): everyone(200),
    ("GET", "/docs"): everyone(200),
    ("GET", "/docs/assets/init.js"): everyone(200),
    ("GET", "/docs/assets/{name}"): everyone(200),
    ("GET", "/healthz"): everyone(200),
    ("GET", "/readyz"): everyone(200),
    ("GET", "/metrics"): everyone(200),
    ("GET", "/static/{path}"): everyone(200),
    ("GET", "/"): everyone(200, shows=OWN),
    ("GET", "/registro"): Expect(303, anonymous=200),
    ("POST", "/registro"): everyone(200, body=new_address),
    ("GET", "/verificar"): everyone(400, query={"token": "x.y"}),
    ("GET", "/entrar"): Expect(303, anonymous=200),
    ("POST", "/entrar"): everyone(303, disabled=403, body=owners_login, private=False),
    ("POST", "/salir"): Expect(303),
    ("GET", "/recuperar"): everyone(200),
    ("POST", "/recuperar"): everyone(200, body=NOBODY),
    ("GET", "/restablecer"): everyone(200, query={"token": "x.y"}),
    ("POST", "/restablecer"): everyone(400, body={**BAD_TOKEN, "password_again": PASSWORD}),
    ("GET", "/solicitudes/nueva"): Expect(200),
    ("POST", "/solicitudes/nueva"): Expect(303, body=FORM),
    ("GET", "/solicitudes/{application_id}"): mine(200, admin=404, shows=OWN),
    ("POST", "/solicitudes/{application_id}/oxxo"): mine(303, admin=404),
    ("POST", "/solicitudes/{application_id}/tarjeta"): mine(303, admin=404),
    ("GET", "/solicitudes/{application_id}/tarjeta"): mine(303, admin=404),
    ("GET", "/cuenta"): Expect(200, shows=OWN),
    ("GET", "/cuenta/mis-datos"): Expect(200, shows=OWN),
    ("POST", "/cuenta/eliminar"): Expect(409, other=422, admin=422, body=delete_form),
    ("GET", "/admin"): staff(200),
    ("POST", "/admin"): staff(200, body=search_form, shows=("admin",)),
    ("GET", "/admin/solicitudes/{application_id}"): staff(200, shows=("admin",)),
    ("GET", "/admin/reembolsos"): staff(200),
    ("GET", "/admin/grupos"): staff(200),
    ("POST", "/admin/solicitudes/{application_id}/reintentar"): staff(409, body=CONFIRMED),
    ("POST", "/admin/solicitudes/{application_id}/reembolsar"): staff(409, body=CONFIRMED),
    ("POST", "/admin/solicitudes/{application_id}/desactivar-cuenta"): staff(303, body=CONFIRMED),
    ("POST", "/admin/solicitudes/{application_id}/activar-cuenta"): staff(303, body=CONFIRMED),
    ("POST", "/admin/pagos/{payment_id}/reembolso-hecho"): staff(409, body=CONFIRMED),
}


def served(app: FastAPI) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The operations of the OpenAPI document, and every other route the app serves (a mount
    as `GET <mount>/{path}`); HEAD goes with GET."""
    doc = app.openapi()
    operations = {(m.upper(), path) for path, item in doc["paths"].items() for m in item}
    others: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            others.add(("GET", f"{route.path}/{{path}}"))
            continue
        for method in route.methods or ():
            if method != "HEAD" and (method, route.path) not in operations:
                others.add((method, str(route.path)))
    return operations, others


def test_the_matrix_covers_every_route_the_app_serves(api: Api) -> None:
    operations, others = served(api.default_app)
    assert operations, "no operation in the OpenAPI document"
    assert {("GET", "/entrar"), ("GET", "/admin"), ("GET", "/cuenta")} <= others
    assert operations - set(API) == set(), "operations the matrix does not cover"
    assert set(API) - operations == set(), "rows for operations the app no longer has"
    assert others - set(WEB) == set(), "routes the matrix does not cover"
    assert set(WEB) - others == set(), "rows for routes the app no longer serves"
    # What the day a route is added looks like: an operation and a page, both uncovered.
    app = api.app()
    app.add_api_route("/v1/nueva", lambda: {}, methods=["POST"])
    app.add_api_route("/nueva-pagina", lambda: {}, include_in_schema=False)
    operations, others = served(app)
    assert operations - set(API) == {("POST", "/v1/nueva")}
    assert others - set(WEB) == {("GET", "/nueva-pagina")}


@dataclass
class Harness:
    pay: Pay
    make_user: Make
    other: User
    admin: User
    clients: dict[str, httpx.AsyncClient]

    async def login(self, email: str) -> Sess:
        r = await self.pay.api.client(self.pay.app).post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD, "issue_bearer": True}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return Sess(body["token"], body["csrf_token"], body["session"]["id"])

    async def world(self, user: User) -> World:
        name = "Zoe " + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12))
        application = await self.pay.new_application(user, first_name=name)
        paid = await self.pay.new_application(user, first_name=name)
        r = await self.pay.pay(user, paid, method="oxxo")
        assert r.status_code == 201, r.text
        return World(
            user.id,
            user.email,
            application,
            r.json()["payment_id"],
            name,
            await self.login(user.email),
        )

    async def sessions(self) -> tuple[World, World, dict[str, Sess]]:
        """A new owner (and its expired and revoked sessions), a disabled account, and new
        sessions of the other applicant and the admin."""
        owner: User = await self.make_user()
        disabled: User = await self.make_user()
        worlds = await self.world(owner), await self.world(disabled)
        logins = [await self.login(u.email) for u in (owner, owner, owner, disabled)]
        owners, expired, revoked, disableds = logins
        sql(
            self.pay.api.settings,
            "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = %s",
            expired.id,
        )
        r = await self.clients["revoked"].post(
            "/v1/auth/logout", headers={"Authorization": f"Bearer {revoked.token}"}
        )
        assert r.status_code == 204, r.text
        # Disabled behind its back: its live session must not carry it anywhere.
        sql(
            self.pay.api.settings,
            "UPDATE users SET disabled_at = now() WHERE id = %s",
            disabled.id,
        )
        callers = {
            "owner": owners,
            "expired": expired,
            "revoked": revoked,
            "disabled": disableds,
            "other": await self.login(self.other.email),
            "admin": await self.login(self.admin.email),
        }
        return worlds[0], worlds[1], callers


@pytest.fixture
async def harness(api: Api, make_user: Make) -> AsyncIterator[Harness]:
    # Each row logs the shared applicant and admin in again: more than the per-account limit,
    # which tests/security/test_sessions.py holds.
    pay = await payments_support.start(
        api, login_limit_per_account=10_000, password_reset_limit_per_account=10_000
    )
    try:
        other, admin = await make_user(), await make_user("admin")
        clients = {caller: api.client(pay.app) for caller in CALLERS}
        yield Harness(pay, make_user, other, admin, clients)
    finally:
        await payments_support.stop(pay)


def _path(template: str, w: World) -> str:
    values = {
        "application_id": w.application,
        "session_id": w.spare.id,
        "payment_id": w.payment,
        "user_id": w.user_id,
        "kind": "permit",
        "name": "swagger-ui.css",
        "path": "sitio.css",
    }
    return template.format(**values)  # a new parameter's name fails here: add it above


def expected(row: Expect, caller: str, api_secured: bool | None) -> int:
    """api_secured: None for a page, else whether the operation needs a principal."""
    if caller == "disabled" and row.disabled is not None:
        return row.disabled
    if caller in ("owner", "other", "admin"):
        status = getattr(row, caller)
        return row.owner if status is None else int(status)
    if api_secured:
        return 403 if caller == "disabled" else 401
    if row.anonymous is None:
        return 401 if api_secured is not None else 303
    return row.anonymous


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    row: Expect,
    body: Any,
    s: Sess | None,
    *,
    api: bool,
) -> httpx.Response:
    client.cookies.clear()
    headers: dict[str, str] = {}
    if api:
        if s is not None:
            headers["Authorization"] = f"Bearer {s.token}"
        return await client.request(method, path, params=row.query, json=body, headers=headers)
    # A browser: the session cookie, and the form's token as its page gave it.
    csrf = s.csrf if s is not None else ANONYMOUS_CSRF
    cookie = f"permisos_csrf={csrf}" + (f"; permisos_session={s.token}" if s else "")
    headers["Cookie"] = cookie
    data = {"csrf_token": csrf, **(body or {})} if method == "POST" else None
    return await client.request(method, path, params=row.query, data=data, headers=headers)


def leaked(r: httpx.Response, markers: list[str]) -> list[str]:
    """The markers an answer holds, beyond the request's own address (a problem's `instance`)."""
    text = r.text.replace(r.request.url.path, "")
    return [m for m in markers if m.lower() in text.lower()]


def problem_slug(caller: str, status: int, secured: bool) -> str | None:
    """The problem a refusal must be: a login that no longer holds, or a role refused."""
    if caller in LOGGED_OUT and secured:
        return "account-disabled" if caller == "disabled" else "authentication-required"
    if caller not in LOGGED_OUT and status == 403:
        return "forbidden"
    return None


def judge(
    r: httpx.Response,
    row: Expect,
    caller: str,
    want: int,
    secured: bool | None,
    w: World,
    owner: World,
) -> list[str]:
    """What is wrong with one answer (secured: None for a page)."""
    if r.status_code != want:
        return [f"{r.status_code}, expected {want}: {r.text[:200]}"]
    wrong = []
    if secured is not None and r.status_code >= 400:
        slug = problem_slug(caller, r.status_code, secured)
        if r.headers["content-type"] != "application/problem+json":
            wrong.append("not a problem document")
        elif slug and not r.json()["type"].endswith("/" + slug):
            wrong.append(f"{r.json()['type']}, expected {slug}")
    walled = secured is None and row.anonymous is None and caller in ("anonymous", *LOGGED_OUT)
    if walled and r.headers.get("location") != "/entrar":
        wrong.append(f"sent to {r.headers.get('location')}, not /entrar")
    shown = w.name.lower() in r.text.lower() or w.email in r.text
    if caller in row.shows and r.status_code < 300 and not shown:
        wrong.append("the answer does not show the resource")
    if caller not in ("owner", "admin") and row.private:
        # The others see nothing of the owner's; a disabled or logged-out account, not even
        # its own.
        theirs = any(m in r.request.url.path for m in owner.markers())
        if caller != "disabled" and r.status_code < 300 and theirs:
            wrong.append(f"{r.status_code} on the owner's resource")
        found = leaked(r, w.markers())
        if found:
            wrong.append(f"the answer holds the owner's {found}")
    return wrong


async def test_every_route_by_every_caller(harness: Harness) -> None:
    operations, _ = served(harness.pay.app)
    doc = harness.pay.app.openapi()
    secured = {
        (m.upper(), p): bool(op.get("security"))
        for p, item in doc["paths"].items()
        for m, op in item.items()
    }
    failures: list[str] = []
    calls = 0
    for (method, template), row in [*API.items(), *WEB.items()]:
        is_api = (method, template) in operations
        guarded = secured[(method, template)] if is_api else None
        owner, disabled, sessions = await harness.sessions()
        for caller in CALLERS:
            w = disabled if caller == "disabled" else owner
            body = row.body(w, caller) if callable(row.body) else row.body
            r = await send(
                harness.clients[caller],
                method,
                _path(template, w),
                row,
                body,
                sessions.get(caller),
                api=is_api,
            )
            calls += 1
            want = expected(row, caller, guarded)
            wrong = judge(r, row, caller, want, guarded, w, owner)
            failures += [f"{method} {template} as {caller}: {what}" for what in wrong]
    print(f"\n{len(API) + len(WEB)} routes x {len(CALLERS)} callers = {calls} requests")
    assert not failures, "\n".join(failures)


async def test_require_role_admits_superadmin(api: Api, make_user: Make) -> None:
    owner: User = await make_user()
    boss: User = await make_user("superadmin")
    created = await owner.client.post("/v1/applications", json=APPLICATION, headers=owner.bearer())
    r = await boss.client.get(f"/v1/applications/{created.json()['id']}", headers=boss.bearer())
    assert r.status_code == 200
    who = await boss.client.get("/v1/auth/session", headers=boss.bearer())
    assert who.json()["user"]["role"] == "superadmin"


async def test_require_role_dependency(api: Api, make_user: Make) -> None:
    app = api.app()

    def staff_only(
        principal: Annotated[Principal, Depends(require_role(Role.admin, Role.superadmin))],
    ) -> dict[str, str]:
        return {"role": principal.user.role}

    app.add_api_route("/staff-only", staff_only)  # what the admin endpoints declare
    client: User = await make_user()
    admin: User = await make_user("admin")
    anon = api.client(app)
    assert (await anon.get("/staff-only")).status_code == 401
    assert (await anon.get("/staff-only", headers=client.bearer())).status_code == 403
    r = await anon.get("/staff-only", headers=admin.bearer())
    assert r.status_code == 200 and r.json() == {"role": "admin"}
