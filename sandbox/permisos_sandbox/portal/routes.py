"""HTTP handlers: the portal's pages, its JSON endpoints and the control API."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from . import catalog, changes, pdf, render
from .config import PortalConfig
from .faults import Faults
from .sessions import COOKIE, Session, SessionStore
from .store import LISTO, PROCESANDO, Submission, SubmissionStore
from .validation import normalize_plates, validate_applicant, validate_vehicle

log = logging.getLogger("permisos_sandbox.portal")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STEP1, STEP2, STEP3 = (
    "/tramites/nuevo/solicitante",
    "/tramites/nuevo/vehiculo",
    "/tramites/nuevo/revision",
)
STATUS_TEXT = {
    500: ("Error interno del servidor", "Ocurrió un error inesperado. Intente más tarde."),
    503: (
        "Servicio no disponible",
        "El servicio no está disponible por el momento. Intente más tarde.",
    ),
}


ROUTER_ERRORS = {
    400: ("Solicitud no válida", "La solicitud no pudo procesarse."),
    404: ("Página no encontrada", "La página solicitada no existe."),
    405: ("Solicitud no válida", "La operación solicitada no está permitida."),
}


class NotFound(Exception):
    """A missing submission or document; the message is shown to the user."""


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


class Portal:
    """The portal's state (config, sessions, submissions) and its request handlers."""

    def __init__(self, config: PortalConfig, accounts: dict[str, str]) -> None:
        self.initial = config.model_copy(deep=True)
        self.config = config
        self.accounts = dict(accounts)
        self.faults = Faults(config)
        self.sessions = SessionStore()
        self.store = SubmissionStore()

    def update_config(self, source: PortalConfig) -> None:
        # In place, so whoever holds `sim.config` keeps seeing the live object.
        copy = source.model_copy(deep=True)
        for name in PortalConfig.model_fields:
            setattr(self.config, name, getattr(copy, name))

    def reset(self) -> None:
        self.update_config(self.initial)
        self.faults.reseed()
        self.sessions.reset()
        self.store.reset()

    # -- application -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login_submit)
        r.add_get("/logout", self.logout)
        r.add_get("/tramites", self.home)
        r.add_get(STEP1, self.applicant_page)
        r.add_post(STEP1, self.applicant_submit)
        r.add_get(STEP2, self.vehicle_page)
        r.add_post(STEP2, self.vehicle_submit)
        r.add_get(STEP3, self.review_page)
        r.add_post("/tramites/nuevo/confirmar", self.confirm)
        r.add_get("/tramites/{id}/estado", self.status_page)
        r.add_get("/tramites/{id}/estado.json", self.status_json)
        r.add_get("/tramites/{id}/documentos/{tipo}.pdf", self.document)
        r.add_get("/consulta", self.consulta)
        r.add_get("/catalogos/lineas", self.lines)
        r.add_get("/__control/health", self.control_health)
        r.add_get("/__control/config", self.control_config)
        r.add_put("/__control/config", self.control_config_put)
        r.add_get("/__control/submissions", self.control_submissions)
        r.add_post("/__control/reset", self.control_reset)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            if request.path.startswith("/__control/"):
                response = await handler(request)
            else:
                response = await self._with_faults(request, handler)
            status = response.status
            return response
        except NotFound as exc:
            status = 404
            return self.html(request, "Página no encontrada", render.message(str(exc)), status=404)
        except web.HTTPException as exc:
            # The router's own 404 and 405, in the portal's language.
            status = exc.status
            if request.path.startswith("/__control/"):
                return web.json_response({"error": exc.reason}, status=exc.status)
            title, text = ROUTER_ERRORS.get(exc.status, ROUTER_ERRORS[400])
            return self.html(request, title, render.message(text), status=exc.status)
        finally:
            # Method, route template and status only: paths and forms may carry personal data.
            resource = request.match_info.route.resource
            template = resource.canonical if resource is not None else "(sin ruta)"
            log.info(
                "%s %s %d %.0fms",
                request.method,
                template,
                status,
                (time.perf_counter() - started) * 1000,
            )

    async def _with_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        config = self.config
        if config.expire_sessions_now:
            self.sessions.expire_authenticated()
            config.expire_sessions_now = False
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        now = datetime.now(UTC)
        closed_until = config.maintenance_hours.closed_until(now)
        if config.maintenance or closed_until is not None:
            # Retry-After: when the scheduled window ends (a minute for the manual switch).
            left = 60 if closed_until is None else math.ceil((closed_until - now).total_seconds())
            return self.html(
                request,
                "Sitio en mantenimiento",
                render.message(
                    "Estamos realizando labores de mantenimiento. Por favor intente más tarde."
                ),
                status=503,
                headers={"Retry-After": str(max(1, left))},
            )
        if (wait := self.faults.throttle()) is not None:
            return self.html(
                request,
                "Demasiadas solicitudes",
                render.message("Ha realizado demasiadas solicitudes. Espere un momento."),
                status=429,
                headers={"Retry-After": str(wait)},
            )
        failure = self.faults.server_error()
        if failure is not None:
            title, text = STATUS_TEXT[failure]
            return self.html(request, title, render.message(text), status=failure)
        return await handler(request)

    # -- helpers -----------------------------------------------------------------------------

    def html(
        self,
        request: web.Request,
        title: str,
        body: str,
        *,
        status: int = 200,
        session: Session | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        usuario = session.usuario if session else None
        text = render.page(title, body, usuario=usuario, modal=self.faults.show_modal())
        text = changes.apply(text, self.config.changed)
        response = web.Response(
            text=text, status=status, content_type="text/html", charset="utf-8", headers=headers
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def _set_cookie(self, response: web.Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=max(1, math.ceil(self.config.session_ttl_seconds)),
            httponly=True,
            samesite="Lax",
            path="/",
        )

    def _session(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def _authenticated(self, request: web.Request) -> Session | None:
        session = self._session(request)
        return session if session is not None and session.usuario is not None else None

    def _bad_request(self, request: web.Request) -> web.Response:
        return self.html(
            request,
            "Solicitud no válida",
            render.message(
                "La solicitud no pudo verificarse. Vuelva a cargar la página e intente de nuevo.",
                ("/tramites", "Regresar al inicio"),
            ),
            status=403,
        )

    async def _form(
        self, request: web.Request
    ) -> tuple[Session | None, dict[str, str], web.Response | None]:
        """A POST behind login: the session, the form, or the response that ends the request."""
        session = self._authenticated(request)
        if session is None:
            return None, {}, see_other("/login?expirada=1")
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if not session.csrf_ok(form.get("csrf_token", "")):
            return session, form, self._bad_request(request)
        return session, form, None

    def _submission(self, request: web.Request) -> Submission:
        submission = self.store.get(request.match_info["id"])
        if submission is None:
            raise NotFound("El trámite solicitado no existe.")
        return submission

    # -- login -------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return see_other("/tramites" if self._authenticated(request) else "/login")

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        fresh = session is None
        if session is None:
            session = self.sessions.create(None, self.config.session_ttl_seconds)
        body = render.login(
            session.csrf_token,
            bad_credentials=False,
            expired=request.query.get("expirada") == "1",
        )
        response = self.html(request, "Iniciar sesión", body)
        if fresh:
            self._set_cookie(response, session)
        return response

    async def login_submit(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if session is None or not session.csrf_ok(form.get("csrf_token", "")):
            return self._bad_request(request)
        usuario = form.get("usuario", "").strip()
        expected = self.accounts.get(usuario)
        given = form.get("contrasena", "")
        if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
            body = render.login(
                session.csrf_token, bad_credentials=True, expired=False, usuario=usuario
            )
            return self.html(request, "Iniciar sesión", body)
        # A new session id on login, so a planted anonymous id never becomes authenticated.
        self.sessions.drop(session.id)
        authenticated = self.sessions.create(usuario, self.config.session_ttl_seconds)
        response = see_other("/tramites")
        self._set_cookie(response, authenticated)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.drop(request.cookies.get(COOKIE))
        response = see_other("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    # -- the application steps ---------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        session = self._authenticated(request)
        if session is None:
            return see_other("/login?expirada=1")
        return self.html(request, "Trámites", render.home(), session=session)

    async def applicant_page(self, request: web.Request) -> web.StreamResponse:
        session = self._authenticated(request)
        if session is None:
            return see_other("/login?expirada=1")
        values = session.draft.get("solicitante", {})
        body = render.applicant_form(session.csrf_token, values, {})
        return self.html(request, "Datos del solicitante", body, session=session)

    async def applicant_submit(self, request: web.Request) -> web.StreamResponse:
        session, form, stop = await self._form(request)
        if stop is not None or session is None:
            return stop or see_other("/login?expirada=1")
        result = validate_applicant(form)
        if not result.ok:
            body = render.applicant_form(session.csrf_token, result.values, result.errors)
            return self.html(request, "Datos del solicitante", body, session=session)
        session.draft["solicitante"] = result.values
        return see_other(STEP2)

    def _years(self) -> list[int]:
        return catalog.model_years(datetime.now(UTC))

    async def vehicle_page(self, request: web.Request) -> web.StreamResponse:
        session = self._authenticated(request)
        if session is None:
            return see_other("/login?expirada=1")
        if "solicitante" not in session.draft:
            return see_other(STEP1)
        values = session.draft.get("vehiculo", {})
        body = render.vehicle_form(session.csrf_token, values, {}, self._years())
        return self.html(request, "Datos del vehículo", body, session=session)

    def _plates_taken(self, referencia: str) -> Callable[[str], bool]:
        active = {normalize_plates(p) for p in self.config.active_plates}
        return lambda plates: plates in active or self.store.plates_taken(plates, referencia)

    async def vehicle_submit(self, request: web.Request) -> web.StreamResponse:
        session, form, stop = await self._form(request)
        if stop is not None or session is None:
            return stop or see_other("/login?expirada=1")
        applicant = session.draft.get("solicitante")
        if applicant is None:
            return see_other(STEP1)
        result = validate_vehicle(form, self._plates_taken(applicant["referencia"]), self._years())
        if not result.ok:
            body = render.vehicle_form(
                session.csrf_token, result.values, result.errors, self._years()
            )
            return self.html(request, "Datos del vehículo", body, session=session)
        session.draft["vehiculo"] = result.values
        return see_other(STEP3)

    async def review_page(self, request: web.Request) -> web.StreamResponse:
        session = self._authenticated(request)
        if session is None:
            return see_other("/login?expirada=1")
        if "solicitante" not in session.draft:
            return see_other(STEP1)
        if "vehiculo" not in session.draft:
            return see_other(STEP2)
        body = render.review(
            session.csrf_token, session.draft["solicitante"], session.draft["vehiculo"]
        )
        return self.html(request, "Revisión de la solicitud", body, session=session)

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        session, _, stop = await self._form(request)
        if stop is not None or session is None:
            return stop or see_other("/login?expirada=1")
        applicant = session.draft.get("solicitante")
        vehicle = session.draft.get("vehiculo")
        if applicant is None or vehicle is None:
            return see_other(STEP1 if applicant is None else STEP2)
        failure = self.faults.take_plate_failure(vehicle["placas"])
        if failure is not None:
            title, text = STATUS_TEXT[failure]
            return self.html(request, title, render.message(text), status=failure)
        submission = self.store.create(
            applicant["referencia"],
            applicant,
            vehicle,
            self.config.processing_seconds,
            self.faults.take_rejection(),
        )
        # The draft is spent: a second POST of the same form does not submit again.
        session.draft.clear()
        return see_other(f"/tramites/{submission.id}/estado")

    # -- status and documents ----------------------------------------------------------------

    async def status_page(self, request: web.Request) -> web.StreamResponse:
        session = self._authenticated(request)
        if session is None:
            return see_other("/login?expirada=1")
        submission = self._submission(request)
        poll_ms = int(min(1000, max(200, self.config.processing_seconds * 250)))
        body = render.status(submission, poll_ms)
        return self.html(request, "Estado del trámite", body, session=session)

    async def status_json(self, request: web.Request) -> web.StreamResponse:
        if self._authenticated(request) is None:
            return see_other("/login?expirada=1")
        submission = self._submission(request)
        mensaje = {
            PROCESANDO: "Su trámite está en proceso",
            LISTO: "Documentos disponibles",
        }.get(submission.estado, submission.reject_reason or "")
        return web.json_response(
            {"estado": submission.estado, "folio": submission.folio, "mensaje": mensaje},
            headers={"Cache-Control": "no-store"},
        )

    async def document(self, request: web.Request) -> web.StreamResponse:
        if self._authenticated(request) is None:
            return see_other("/login?expirada=1")
        submission = self._submission(request)
        kind = request.match_info["tipo"]
        if kind not in pdf.KINDS or submission.estado != LISTO:
            raise NotFound("El documento solicitado no está disponible.")
        body = submission.documents.get(kind)
        if body is None:
            body = submission.documents[kind] = pdf.render(submission, kind)
        headers = {
            "Content-Disposition": f'attachment; filename="{kind}-{submission.folio}.pdf"',
            "Cache-Control": "no-store",
        }
        mode = self.config.download
        if mode == "normal":
            return web.Response(body=body, content_type="application/pdf", headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_type = "application/pdf"
        response.content_length = len(body)
        await response.prepare(request)
        if mode == "abort":
            # Headers and part of the body, then the connection drops: a truncated download.
            await response.write(body[: len(body) // 2])
            await asyncio.sleep(0.05)
            if request.transport is not None:
                request.transport.abort()
            return response
        chunks = 10
        step = math.ceil(len(body) / chunks)
        try:
            for offset in range(0, len(body), step):
                await asyncio.sleep(self.config.download_delay_seconds / chunks)
                await response.write(body[offset : offset + step])
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client gave up waiting, as clients of a slow portal do
        return response

    # -- consulta and catalogs ---------------------------------------------------------------

    async def consulta(self, request: web.Request) -> web.StreamResponse:
        session = self._authenticated(request)
        if session is None:
            return see_other("/login?expirada=1")
        raw = request.query.get("referencia")
        referencia = raw.strip() if raw is not None else None
        results = self.store.by_referencia(referencia) if referencia else []
        body = render.consulta(session.csrf_token, referencia, results)
        return self.html(request, "Consulta de trámite", body, session=session)

    async def lines(self, request: web.Request) -> web.StreamResponse:
        if self._authenticated(request) is None:
            return see_other("/login?expirada=1")
        make = catalog.find_make(request.query.get("marca", ""))
        if make is None:
            return web.json_response([], status=404)
        return web.json_response([{"clave": ln.clave, "nombre": ln.nombre} for ln in make.lineas])

    # -- control API -------------------------------------------------------------------------

    async def control_health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def control_config(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.config.model_dump(mode="json"))

    async def control_config_put(self, request: web.Request) -> web.StreamResponse:
        try:
            changes: Any = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": "el cuerpo no es JSON"}, status=400)
        if not isinstance(changes, dict):
            return web.json_response({"error": "se esperaba un objeto JSON"}, status=400)
        try:
            merged = PortalConfig.model_validate(self.config.model_dump() | changes)
        except ValidationError as exc:
            errors = json.loads(exc.json(include_url=False, include_input=False))
            return web.json_response(
                {"error": "configuración no válida", "detalle": errors}, status=400
            )
        self.update_config(merged)
        if "seed" in changes:
            # Putting the same seed again restarts its sequence: a repeatable run from here.
            self.faults.reseed()
        return web.json_response(self.config.model_dump(mode="json"))

    async def control_submissions(self, request: web.Request) -> web.StreamResponse:
        referencia = request.query.get("referencia", "")
        found = self.store.by_referencia(referencia)
        return web.json_response(
            {
                "referencia": referencia,
                "count": len(found),
                "tramites": [s.summary() for s in found],
            }
        )

    async def control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response(self.config.model_dump(mode="json"))
