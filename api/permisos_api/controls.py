"""One guard for every text a request carries: no control characters.

It reads the path, the query string and a JSON or form body (each string, and each key) before
any route runs. PostgreSQL text cannot hold NUL (a query that carried one raised DataError: a
500), and a control character in a name, a CURP or a search is never what a person meant. No
field of the API or of the pages is multi-line (no address, no comment box), so tab, newline and
carriage return are refused too; so are DEL, the C1 controls and lone surrogates (which cannot
even be encoded to store). The JSON API answers a 422 problem naming each field; a page says it
in Spanish. Stripe's webhook is left alone: its body is Stripe's, checked byte for byte by its
signature, and a description of Stripe's may hold a newline.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import FieldError, problem_response, validation_problem
from .web.render import environment

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
RULE = "control_character"
DETAIL = "Must not contain control characters (NUL, tab, newline and the like)"
API_PREFIX = "/v1/"
EXEMPT_BODIES = frozenset({"/v1/webhooks/stripe"})
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# Where UTF-8 JSON can hold a control character: escaped (a raw one in a string is not JSON,
# which FastAPI refuses), or DEL or a C1 control raw. A NUL byte means another encoding
# (UTF-16 or -32, which JSON allows): that body is walked too. Without any, there is nothing to
# find, and the body is not parsed a second time (every write of the API carries one).
MAYBE_CONTROL = re.compile(rb"[\\\x00\x7f]|\xc2[\x80-\x9f]")
TEMPLATE = "caracteres.html"


def _strings(document: Any) -> Iterator[tuple[str, str]]:
    """Each string of a decoded JSON document (keys too), with its dotted field path; walked
    with a queue of its own, so a deeply nested body cannot exhaust Python's."""
    queue: deque[tuple[str, Any]] = deque([("", document)])
    while queue:
        where, value = queue.popleft()
        if isinstance(value, str):
            yield where or "body", value
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = f"{where}.{key}" if where else str(key)
                yield inner, str(key)
                queue.append((inner, item))
        elif isinstance(value, list):
            queue += [(f"{where}.{i}" if where else str(i), item) for i, item in enumerate(value)]


def _media_type(scope: Scope) -> str:
    return Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()


async def _form_strings(scope: Scope, body: bytes) -> list[tuple[str, str]]:
    """A form's fields, read by Starlette's own parser (what the pages read); files' contents
    are not text inputs, their names are."""
    request = Request(scope, _replay(body, None))
    try:
        form = await request.form()
    except HTTPException:
        return []  # malformed: the page's own reading answers it
    try:
        return [
            (name, value if isinstance(value, str) else value.filename or "")
            for name, value in form.multi_items()
        ]
    finally:
        await form.close()


def _reads_text(media: str) -> bool:
    return media in ("application/json", *FORMS) or media.endswith("+json")


async def _body_strings(scope: Scope, body: bytes) -> list[tuple[str, str]]:
    if _media_type(scope) in FORMS:
        return await _form_strings(scope, body)
    if not MAYBE_CONTROL.search(body):
        return []
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []  # not JSON (or nested past reading): FastAPI answers that itself
    return list(_strings(document))


def _replay(body: bytes, receive: Receive | None) -> Receive:
    """A `receive` that hands the app the body already read, then the connection's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replay


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message  # the client left
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def offending(scope: Scope, body_strings: list[tuple[str, str]]) -> list[str]:
    """The fields (`path`, query parameters, body fields) holding a control character, named
    without it (a key may hold one too)."""
    query = scope.get("query_string", b"").decode("utf-8", "replace")
    pairs = parse_qsl(query, keep_blank_values=True)
    strings = [("path", scope["path"])]
    strings += [(name, text) for name, value in pairs for text in (name, value)]
    strings += body_strings
    found = [name for name, text in strings if CONTROL.search(text)]
    return list(dict.fromkeys(CONTROL.sub("\ufffd", name) for name in found))


class ControlCharactersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_strings: list[tuple[str, str]] = []
        # Only a body the app reads as text is read here (a GET's is not read at all).
        reads = scope["method"] not in ("GET", "HEAD") and _reads_text(_media_type(scope))
        if reads and scope["path"] not in EXEMPT_BODIES:
            body, left = await _read_body(receive)
            if left is not None:
                return  # the client left before sending it all: no one to answer
            body_strings = await _body_strings(scope, body)
            receive = _replay(body, receive)
        fields = offending(scope, body_strings)
        if not fields:
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(API_PREFIX):
            problem = validation_problem(
                [FieldError(field=name, rule=RULE, detail=DETAIL) for name in fields]
            )
            # The problem's `instance` is the path, which must not echo what was refused.
            shown = Request({**scope, "path": CONTROL.sub("\ufffd", scope["path"])})
            response: Response = problem_response(
                shown, problem.slug, problem.detail, errors=problem.errors
            )
        else:
            html = environment.get_template(TEMPLATE).render(visitor=None, csrf_token="")
            response = HTMLResponse(html, status_code=422, headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)
