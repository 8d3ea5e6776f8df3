"""The applicant's web pages: server-rendered, in Spanish (es-MX), served by the API itself,
with no script where a form does the job. They call the same services as the JSON API
(`accounts.py`), so a rule holds in both."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from . import access, account, admin, admin_actions, applying, home, paying

STATIC = Path(__file__).with_name("static")
STATIC_PATH = "/static"
ROUTERS = (
    home.router,
    access.router,
    applying.router,
    paying.router,
    account.router,
    admin.router,
    admin_actions.router,
)


def install_web(app: FastAPI) -> None:
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
