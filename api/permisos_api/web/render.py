"""Pages from the Jinja templates, with what every page needs: the visitor, the form token."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..auth import Principal
from ..context import Services
from ..es_mx import MEXICO_CITY, pesos
from . import csrf

TEMPLATES = Path(__file__).with_name("templates")
environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _moment(value: datetime | None) -> str:
    """`08/12/2026 06:00`, Mexico City's clock (the whole site reads time in it)."""
    return "" if value is None else f"{value.astimezone(MEXICO_CITY):%d/%m/%Y %H:%M}"


environment.filters["pesos"] = pesos
environment.filters["momento"] = _moment


def page(
    request: Request,
    svc: Services,
    template: str,
    visitor: Principal | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    token, new_cookie = csrf.form_token(request, visitor)
    html = environment.get_template(template).render(
        visitor=visitor, csrf_token=token, request_path=request.url.path, **context
    )
    # Pages carry personal data and form tokens: never stored by a browser or a proxy.
    response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
    if new_cookie:
        csrf.set_cookie(response, token, svc.settings)
    return response
