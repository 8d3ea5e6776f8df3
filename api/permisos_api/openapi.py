"""The public OpenAPI document: how each operation authenticates, and which errors it answers.

FastAPI marks every operation that depends on `auth.bearer_token` (through `current_principal`)
with that one scheme. A browser session is two credentials at once (the cookie and, on unsafe
methods, its CSRF header), which a FastAPI dependency cannot declare, so the requirement is
completed here: a Bearer token OR the session cookie (with `X-CSRF-Token` unless the method is
safe). Every other operation says `security: []`. Each operation that reads a JSON body also
documents the problems about the body itself (400 unreadable, 415 not JSON, 422). Responses
carry OpenAPI links: where the ids they return lead, as a client follows them (Schemathesis'
stateful tests chain the same: create an application, then read, edit, pay or cancel it).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .auth import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from .problems import problem_responses

BEARER = "bearerToken"
COOKIE_SCHEMES = {
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The HttpOnly session cookie that `POST /v1/auth/login` sets.",
    },
    "csrfHeader": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "With the session cookie on unsafe methods: the login answer's "
        "`csrf_token` (also in the cookie `permisos_csrf`).",
    },
}


APPLICATION = "/v1/applications/{application_id}"
ADMIN_APPLICATION = "/v1/admin/applications/{application_id}"
# (operation, status) -> the parameters its answer gives, and the operations they lead to.
LINKS: list[tuple[tuple[str, str, str], dict[str, str], list[tuple[str, str]]]] = [
    (
        ("POST", "/v1/applications", "201"),
        {"application_id": "$response.body#/id"},
        [
            ("GET", APPLICATION),
            ("PATCH", APPLICATION),
            ("POST", f"{APPLICATION}/cancel"),
            ("GET", f"{APPLICATION}/permit-history"),
            ("GET", f"{APPLICATION}/permits"),
            ("POST", f"{APPLICATION}/payments"),
            ("GET", f"{APPLICATION}/payments"),
            ("GET", ADMIN_APPLICATION),
            ("POST", f"{ADMIN_APPLICATION}/retry-permit"),
            ("POST", f"{ADMIN_APPLICATION}/refund"),
        ],
    ),
    (
        ("PATCH", APPLICATION, "200"),
        {"application_id": "$response.body#/id"},
        [("GET", APPLICATION), ("POST", f"{APPLICATION}/payments")],
    ),
    (
        ("POST", f"{APPLICATION}/payments", "201"),
        {"application_id": "$request.path.application_id"},
        [("GET", f"{APPLICATION}/payments"), ("POST", f"{APPLICATION}/cancel")],
    ),
    (
        ("POST", f"{APPLICATION}/payments", "201"),
        {"payment_id": "$response.body#/payment_id"},
        [("POST", "/v1/admin/payments/{payment_id}/manual-refund")],
    ),
    (
        ("POST", "/v1/auth/login", "200"),
        {"session_id": "$response.body#/session/id"},
        [("DELETE", "/v1/auth/sessions/{session_id}")],
    ),
    (
        ("GET", ADMIN_APPLICATION, "200"),
        {"user_id": "$response.body#/application/owner_id"},
        [
            ("POST", "/v1/admin/users/{user_id}/disable"),
            ("POST", "/v1/admin/users/{user_id}/enable"),
        ],
    ),
]


def _add_links(doc: dict[str, Any]) -> None:
    paths = doc.get("paths", {})
    for (method, path, status), parameters, targets in LINKS:
        links = paths[path][method.lower()]["responses"][status].setdefault("links", {})
        for target_method, target_path in targets:
            target = paths[target_path][target_method.lower()]["operationId"]
            links[target] = {"operationId": target, "parameters": parameters}


def _requirements(method: str) -> list[dict[str, list[str]]]:
    cookie: dict[str, list[str]] = {"sessionCookie": []}
    if method.upper() not in SAFE_METHODS:
        cookie["csrfHeader"] = []
    return [{BEARER: []}, cookie]


def _body_problems() -> dict[str, Any]:
    return {
        str(status): {key: value for key, value in entry.items() if key != "model"}
        for status, entry in problem_responses(400, 415, 422).items()
    }


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Adds the cookie schemes, each operation's requirements and the body problems (in place;
    doing it twice changes nothing)."""
    doc.setdefault("components", {}).setdefault("securitySchemes", {}).update(COOKIE_SCHEMES)
    for item in doc.get("paths", {}).values():
        for method, operation in item.items():
            authenticated = any(BEARER in r for r in operation.get("security") or [])
            operation["security"] = _requirements(method) if authenticated else []
            if "requestBody" in operation:
                for status, entry in _body_problems().items():
                    operation["responses"].setdefault(status, entry)
    _add_links(doc)
    return doc


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi  # FastAPI's own, which caches the document

    def build() -> dict[str, Any]:
        return complete(generate())

    app.openapi = build  # type: ignore[method-assign]
