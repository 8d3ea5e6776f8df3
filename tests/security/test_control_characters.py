"""A NUL or another control character in any text a request carries is refused before it is
read: every text input of every operation of the OpenAPI document (path and query parameters,
each string of the JSON body), and every field of every form the pages show. The API answers a
422 problem naming the field, a page says it in Spanish; never a 5xx, and nothing is stored."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from permisos_api.settings import ApiSettings
from tests.api.conftest import APPLICATION, Api, User, sql

Make = Callable[..., Any]
NUL = "ju\x00ana"
# What a browser could never send in a one-line field, and what PostgreSQL cannot store.
ODD = ["\x00", "\x1f", "\t", "\n", "\x7f", "\x85", "\ud800"]
PAGE_SAYS = "No pudimos leer lo que enviaste"
Op = tuple[str, str, dict[str, Any]]


def table_counts(settings: ApiSettings) -> dict[str, int]:
    tables = sql(
        settings,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    return {name: sql(settings, f'SELECT count(*) FROM "{name}"')[0][0] for (name,) in tables}


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    found: dict[str, Any] = doc
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def _is_text(schema: dict[str, Any]) -> bool:
    kinds = [schema, *schema.get("anyOf", [])]
    return any(k.get("type") == "string" for k in kinds)


def text_inputs(doc: dict[str, Any]) -> Iterator[tuple[Op, str, str]]:
    """(operation, where, name) for each text input the document declares."""
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            op = (method.upper(), path, operation)
            for param in operation.get("parameters", []):
                if param["in"] in ("path", "query") and _is_text(param["schema"]):
                    yield op, param["in"], param["name"]
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                schema = _resolve(doc, content["application/json"]["schema"])
                for name, prop in schema.get("properties", {}).items():
                    if _is_text(prop):
                        yield op, "body", name


def example_body(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return {}
    schema = _resolve(doc, content["application/json"]["schema"])
    return dict((schema.get("examples") or [{}])[0])


def assert_refused(r: httpx.Response, field: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/validation-error")
    assert {"field": field, "rule": "control_character"} in [
        {"field": e["field"], "rule": e["rule"]} for e in problem["errors"]
    ], problem
    assert "\\u0000" not in r.text  # what was refused is not echoed, in `instance` neither


async def test_every_text_input_of_the_api_refuses_control_characters(
    api: Api, make_user: Make
) -> None:
    owner: User = await make_user()
    admin: User = await make_user("admin")
    created = await owner.client.post("/v1/applications", json=APPLICATION, headers=owner.bearer())
    app_id = created.json()["id"]
    doc = api.default_app.openapi()
    inputs = list(text_inputs(doc))
    # The document's own inputs, so a new field is covered the day it appears.
    assert {name for _, _, name in inputs} >= {"first_name", "curp", "email", "password", "token"}
    before = table_counts(api.settings)
    tried = 0
    for (method, path, operation), where, name in inputs:
        caller = admin if path.startswith("/v1/admin/") else owner
        good = {"application_id": app_id, "kind": "permit"}
        params = {
            p["name"]: good.get(p["name"], str(uuid.uuid4()))
            for p in operation.get("parameters", [])
            if p["in"] == "path"
        }
        query: dict[str, str] = {}
        body = example_body(doc, operation)
        if where == "path":
            params[name] = quote(NUL, safe="")  # as a client writes it in an address
        elif where == "query":
            query[name] = NUL
        else:
            body[name] = NUL
        r = await caller.client.request(
            method,
            path.format(**params),
            params=query,
            json=body if "requestBody" in operation else None,
            headers=caller.bearer(),
        )
        assert_refused(r, "path" if where == "path" else name)
        tried += 1
    # Each kind of character, in a body (JSON's escapes, as a client may write them), a query
    # (a lone surrogate has no UTF-8 to put in an address) and a JSON key.
    for odd in ODD:
        body = json.dumps({**APPLICATION, "last_name": f"G{odd}"})
        headers = {**owner.bearer(), "Content-Type": "application/json"}
        r = await owner.client.post("/v1/applications", content=body, headers=headers)
        assert_refused(r, "last_name")
        tried += 1
        if "\ud800" <= odd <= "\udfff":
            continue
        r = await admin.client.get(
            "/v1/admin/applications", params={"curp": f"GODE{odd}"}, headers=admin.bearer()
        )
        assert_refused(r, "curp")
        tried += 1
    # Written raw rather than escaped, in UTF-8 (DEL, a C1 control) and in UTF-16, which JSON
    # allows too (where a C1 control is no longer the bytes C2 8x).
    json_headers = {**owner.bearer(), "Content-Type": "application/json"}
    for raw in ("\x7f", "\x85"):
        body = json.dumps({**APPLICATION, "last_name": f"G{raw}"}, ensure_ascii=False)
        r = await owner.client.post("/v1/applications", content=body.encode(), headers=json_headers)
        assert_refused(r, "last_name")
    body = json.dumps({**APPLICATION, "last_name": "G\u0085"}, ensure_ascii=False)
    r = await owner.client.post(
        "/v1/applications", content=body.encode("utf-16"), headers=json_headers
    )
    assert_refused(r, "last_name")
    tried += 3
    r = await owner.client.post(
        "/v1/applications", json={**APPLICATION, "x\x00": 1}, headers=owner.bearer()
    )
    assert_refused(r, "x\ufffd")  # the key, named without what was refused
    # Deep in a body; and a body nested past what can be read is refused, never a 5xx.
    deep: Any = ["\x00"]
    for _ in range(500):
        deep = [deep]
    r = await owner.client.post(
        "/v1/applications", json={**APPLICATION, "vin": deep}, headers=owner.bearer()
    )
    assert_refused(r, "vin" + ".0" * 501)
    r = await owner.client.post(
        "/v1/applications",
        content="[" * 100_000,
        headers={**owner.bearer(), "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    tried += 2
    assert table_counts(api.settings) == before, "a refused request stored something"
    print(f"\n{tried} requests with control characters, {len(inputs)} text inputs, all 422")


async def test_a_password_or_a_name_with_a_tab_is_refused_but_accents_are_not(
    api: Api, make_user: Make
) -> None:
    """The refused set is the control characters only: Spanish letters and symbols pass."""
    owner: User = await make_user()
    r = await owner.client.post(
        "/v1/applications",
        json={**APPLICATION, "first_name": "María José", "last_name": "Núñez-O'Brien"},
        headers=owner.bearer(),
    )
    assert r.status_code == 201, r.text
    r = await api.client().post(
        "/v1/auth/login", json={"email": owner.email, "password": "Correcto-caballo-42\t"}
    )
    assert_refused(r, "password")
    # A string that only looks like an escape is text, not a control character.
    r = await api.client().post(
        "/v1/auth/login", json={"email": "x\\u0000@example.com", "password": "nada-de-nada"}
    )
    assert r.status_code == 401, r.text


class Forms(HTMLParser):
    """Each POST form of a page: its action and its fields with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self.forms.append((a.get("action") or "", {}))
        elif tag in ("input", "select", "textarea") and self.forms and a.get("name"):
            if a.get("type") == "submit":
                return
            self.forms[-1][1].setdefault(a["name"] or "", a.get("value") or "x")


def forms_of(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


@pytest.fixture
async def web_forms(api: Api, make_user: Make) -> list[tuple[User | None, str, dict[str, str]]]:
    """Every form the pages show, with who sees it: the visitor's pages, an applicant's and
    an admin's (the application's page and the console's)."""
    owner: User = await make_user()
    admin: User = await make_user("admin")
    created = await owner.client.post("/v1/applications", json=APPLICATION, headers=owner.bearer())
    app_id = created.json()["id"]
    pages: list[tuple[User | None, str]] = [
        (None, "/registro"),
        (None, "/entrar"),
        (None, "/recuperar"),
        (None, "/restablecer?token=abc"),
        (owner, "/"),
        (owner, "/solicitudes/nueva"),
        (owner, f"/solicitudes/{app_id}"),
        (owner, "/cuenta"),
        (admin, "/admin"),
        (admin, f"/admin/solicitudes/{app_id}"),
    ]
    found = []
    for user, page in pages:
        client = user.client if user else api.client()
        r = await client.get(page)
        assert r.status_code == 200, (page, r.text)
        found += [(user, action, fields) for action, fields in forms_of(r.text)]
    return found


async def test_every_field_of_every_form_refuses_control_characters(
    api: Api, web_forms: list[tuple[User | None, str, dict[str, str]]]
) -> None:
    actions = {action for _, action, _ in web_forms}
    assert {"/registro", "/entrar", "/solicitudes/nueva", "/salir", "/admin"} <= actions, actions
    before = table_counts(api.settings)
    tried = 0
    for user, action, fields in web_forms:
        for name in fields:
            client = user.client if user else api.client()
            r = await client.post(action, data={**fields, name: NUL})
            assert r.status_code == 422, (action, name, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("text/html")
            assert PAGE_SAYS in r.text and 'lang="es-MX"' in r.text
            tried += 1
    # A form sent as multipart, as a browser may: the same reading, the same refusal.
    r = await api.client().post(
        "/entrar", files={"email": (None, NUL), "password": (None, "x"), "csrf_token": (None, "t")}
    )
    assert r.status_code == 422 and PAGE_SAYS in r.text
    tried += 1
    # Stripe's webhook body is Stripe's (signed byte for byte): its signature decides, not this.
    r = await api.client().post(
        "/v1/webhooks/stripe",
        content=json.dumps({"type": "charge.succeeded", "description": "dos\nlíneas"}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["type"].endswith("/invalid-signature")
    # The query strings of pages too (a mailed link's token, the console's filter).
    anonymous = api.client()
    for page, params in (("/verificar", {"token": NUL}), ("/restablecer", {"token": NUL})):
        r = await anonymous.get(page, params=params)
        assert r.status_code == 422 and PAGE_SAYS in r.text, page
        tried += 1
    assert table_counts(api.settings) == before, "a refused form stored something"
    print(f"\n{tried} form submissions and page addresses with a NUL, all 422")
