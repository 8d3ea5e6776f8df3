"""Getting in: create an account, confirm the email (the mailed link lands here), log in and
out, and reset a forgotten password. Each form posts to its own page; a mistake comes back
with the message next to its field and what was typed kept (never the password). The accounts'
work (Argon2id hashing, the database, mail) runs in worker threads: on the event loop, one
login would hold up every other request for as long as its hash takes."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import accounts
from ..auth import clear_session_cookies, set_session_cookies
from ..deps import Db, Svc
from ..problems import FieldError, ProblemError
from ..schemas import LoginIn, RegisterIn, ResetConfirmIn, ResetRequestIn
from . import csrf, forms
from .home import show_home
from .messages import EXPIRED_FORM, field_messages, problem_message
from .render import page
from .visitor import Visitor, to_login

router = APIRouter(include_in_schema=False)


def _expired(request: Request, svc: Svc, template: str, **context: object) -> HTMLResponse:
    return page(request, svc, template, None, status=403, alert=EXPIRED_FORM, **context)


@router.get("/registro")
def register_form(request: Request, svc: Svc, visitor: Visitor) -> Response:
    if visitor is not None:
        return RedirectResponse("/", status_code=303)
    return page(request, svc, "registro.html", None, values={}, errors={})


@router.post("/registro")
async def register(request: Request, db: Db, svc: Svc) -> Response:
    values = await forms.fields(request, ("email", "password"))
    kept = {"email": values["email"]}
    if not csrf.valid(request, values["csrf_token"], None):
        return _expired(request, svc, "registro.html", values=kept, errors={})
    parsed = forms.parse(RegisterIn, values)
    if isinstance(parsed, list):
        # Every mistake at once: the password's too, which the model leaves to the policy.
        policy = accounts.password_errors(values["password"], values["email"])
        errors = field_messages([*parsed, *policy])
        return page(request, svc, "registro.html", None, status=422, values=kept, errors=errors)
    try:
        await run_in_threadpool(accounts.register, db, svc, request, parsed.email, parsed.password)
    except ProblemError as problem:
        if problem.errors:
            errors = field_messages(problem.errors)
            return page(request, svc, "registro.html", None, status=422, values=kept, errors=errors)
        alert = problem_message(problem)
        return page(
            request,
            svc,
            "registro.html",
            None,
            status=problem.status,
            values=kept,
            errors={},
            alert=alert,
        )
    hours = svc.settings.email_verification_ttl_seconds // 3600
    return page(request, svc, "registro-enviado.html", None, email=parsed.email, hours=hours)


@router.get("/verificar")
def verify(request: Request, db: Db, svc: Svc, visitor: Visitor, token: str = "") -> Response:
    try:
        accounts.verify_email(db, svc, token)
    except ProblemError as problem:
        return page(
            request, svc, "verificado.html", visitor, status=400, alert=problem_message(problem)
        )
    return page(request, svc, "verificado.html", visitor)


@router.get("/entrar")
def login_form(request: Request, svc: Svc, visitor: Visitor) -> Response:
    if visitor is not None:
        return RedirectResponse("/", status_code=303)
    return page(request, svc, "entrar.html", None, values={}, errors={})


@router.post("/entrar")
async def login(request: Request, db: Db, svc: Svc) -> Response:
    values = await forms.fields(request, ("email", "password"))
    kept = {"email": values["email"]}
    if not csrf.valid(request, values["csrf_token"], None):
        return _expired(request, svc, "entrar.html", values=kept, errors={})
    parsed = forms.parse(LoginIn, values)
    if isinstance(parsed, list):
        errors = field_messages(parsed)
        return page(request, svc, "entrar.html", None, status=422, values=kept, errors=errors)
    try:
        done = await run_in_threadpool(
            accounts.log_in, db, svc, request, parsed.email, parsed.password
        )
    except ProblemError as problem:
        return page(
            request,
            svc,
            "entrar.html",
            None,
            status=problem.status,
            values=kept,
            errors={},
            alert=problem_message(problem),
        )
    response = RedirectResponse("/", status_code=303)
    session = done.session
    set_session_cookies(response, done.token, session.csrf_token, session.expires_at, svc.settings)
    return response


@router.post("/salir")
async def logout(request: Request, db: Db, svc: Svc, visitor: Visitor) -> Response:
    """Only the visitor's own form logs out: another site's (which arrives without the session
    cookie, or without the token) changes nothing, cookies included."""
    if visitor is None:
        return to_login()
    values = await forms.fields(request, ())
    if not csrf.valid(request, values["csrf_token"], visitor):
        return show_home(request, db, svc, visitor, alert=EXPIRED_FORM, status=403)
    await run_in_threadpool(accounts.log_out, db, visitor.session.id)
    response = RedirectResponse("/entrar", status_code=303)
    clear_session_cookies(response, svc.settings)
    return response


@router.get("/recuperar")
def reset_request_form(request: Request, svc: Svc) -> Response:
    return page(request, svc, "recuperar.html", None, values={}, errors={})


@router.post("/recuperar")
async def reset_request(
    request: Request, db: Db, svc: Svc, background: BackgroundTasks
) -> Response:
    values = await forms.fields(request, ("email",))
    kept = {"email": values["email"]}
    if not csrf.valid(request, values["csrf_token"], None):
        return _expired(request, svc, "recuperar.html", values=kept, errors={})
    parsed = forms.parse(ResetRequestIn, values)
    if isinstance(parsed, list):
        errors = field_messages(parsed)
        return page(request, svc, "recuperar.html", None, status=422, values=kept, errors=errors)
    try:
        await run_in_threadpool(accounts.request_reset, db, svc, request, parsed.email, background)
    except ProblemError as problem:
        return page(
            request,
            svc,
            "recuperar.html",
            None,
            status=problem.status,
            values=kept,
            errors={},
            alert=problem_message(problem),
        )
    minutes = svc.settings.password_reset_ttl_seconds // 60
    return page(request, svc, "recuperar-enviado.html", None, email=parsed.email, minutes=minutes)


@router.get("/restablecer")
def reset_form(request: Request, svc: Svc, token: str = "") -> Response:
    return page(request, svc, "restablecer.html", None, token=token, errors={})


@router.post("/restablecer")
async def reset(request: Request, db: Db, svc: Svc) -> Response:
    values = await forms.fields(request, ("token", "password", "password_again"))
    token = values["token"]
    if not csrf.valid(request, values["csrf_token"], None):
        return _expired(request, svc, "restablecer.html", token=token, errors={})
    if values["password"] != values["password_again"]:
        mismatch = [FieldError(field="password_again", rule="passwords_differ", detail="")]
        errors = field_messages(mismatch)
        return page(request, svc, "restablecer.html", None, status=422, token=token, errors=errors)
    parsed = forms.parse(ResetConfirmIn, values)
    if isinstance(parsed, list):
        errors = field_messages(parsed)
        return page(request, svc, "restablecer.html", None, status=422, token=token, errors=errors)
    try:
        await run_in_threadpool(accounts.confirm_reset, db, svc, parsed.token, parsed.password)
    except ProblemError as problem:
        if problem.errors:
            errors = field_messages(problem.errors)
            return page(
                request, svc, "restablecer.html", None, status=422, token=token, errors=errors
            )
        return page(
            request,
            svc,
            "restablecer.html",
            None,
            status=problem.status,
            token=token,
            errors={},
            alert=problem_message(problem),
        )
    return page(request, svc, "restablecido.html", None)
