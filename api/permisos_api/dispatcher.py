"""The outbox dispatcher: paid applications become PermitRequests.

The webhook that marks an application `paid` writes an `outbox` row in the same transaction. This
loop picks due rows (`dispatched_at IS NULL AND next_attempt_at <= now`) with
`FOR UPDATE SKIP LOCKED`, so any number of API replicas can run it, and leases them by moving
`next_attempt_at` ahead: a replica that dies mid-delivery releases its rows when the lease ends.
For each row, in this order:

1. the applicant Secret `<name>-applicant` (the personal data), created first so that the runner's
   Job never starts without it. If it already exists (409: an earlier delivery of this row, by a
   replica that died before recording it), it is never read: one JSON patch tests that it is the
   dispatcher's Secret of this application (its two labels, type Opaque) and sets its data to the
   application's current data, stale or extra keys gone. A Secret of that name that is not this
   application's fails the test (422) and the delivery, untouched and before any PermitRequest;
2. the PermitRequest (no personal data), created with the mirror's finalizer
   (`permisosdigitales.mx/record-outcome`, see mirror/) so its outcome is recorded before it can
   go; 409 AlreadyExists is success: the existing one is read for its uid, never a second one is
   made;
3. the Secret's ownerReference to the PermitRequest, so it goes with it: a JSON patch with the same
   tests that sets the references to exactly that one, so it is safe to repeat, and a reference
   to any other object (an earlier PermitRequest of the same name) does not keep the personal data
   alive after its request;
4. the row is marked dispatched, and the permit gets its row in `permits` (named after its
   PermitRequest) if it has none yet.

So the API needs no `get` on Secrets (see rbac.py). It still has `patch`, whose answer is the whole
object: whoever holds its token can read a Secret whose name they know through a patch, so other
Secrets are best kept out of its namespace.

The row's kind names the PermitRequest: `permit_request` is the first one, named after the
application (`<application-id>`); `permit_request_r<N>` is an admin's N-th retry of a failed
permit (`<application-id>-r<N>`), a new PermitRequest because terminal phases never change again.

Any failure (the Kubernetes API down, a refusal) counts an attempt and schedules the next one with
capped exponential backoff; `last_error` names the failure without personal data. Nothing is lost:
the row stays until a delivery succeeds.

`python -m permisos_api.dispatcher [--once]` runs it on its own; the API app runs it as a
background task when `PERMISOS_API_DISPATCHER_ENABLED` is true.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError
from sqlalchemy import Engine, func, or_, select, update

from permisos.applicant import Applicant
from permisos.kube import JSON, JSON_PATCH, KubeError
from permisos.resources import API_VERSION, PermitRequestSpec, Vehicle

from .db import database_cause, make_engine, utcnow
from .kube import FINALIZER, ApiKube, permit_requests, secrets
from .mail import Mailer
from .models import Application, ApplicationStatus, Outbox
from .notices import send_permit_notices
from .permit_rows import ensure_permit
from .settings import ApiSettings

log = logging.getLogger("permisos.api.dispatcher")

KIND = "permit_request"
RETRY_KIND_PREFIX = "permit_request_r"
MANAGED_BY = "permisos-api"
APPLICATION_LABEL = "permisosdigitales.mx/application"
# Applications in these states are past their payment: their row is delivered without a request.
SKIP_STATUSES = frozenset(
    {
        ApplicationStatus.cancelled.value,
        ApplicationStatus.expired.value,
        ApplicationStatus.refunded.value,
    }
)


class DispatcherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "permisos_outbox_pending",
            "Outbox rows not yet delivered to Kubernetes.",
            registry=registry,
        )
        self.dispatched = Counter(
            "permisos_outbox_dispatched",
            "Outbox rows delivered (PermitRequest and Secret created or found).",
            registry=registry,
        )
        self.errors = Counter(
            "permisos_outbox_errors",
            "Failed deliveries of outbox rows (each one is retried later).",
            registry=registry,
        )
        self.permits = Counter(
            "permisos_permits",
            "Permits by outcome (issued, failed), counted once each when the applicant is told.",
            ["outcome"],
            registry=registry,
        )


@dataclass(frozen=True)
class Claimed:
    """One leased outbox row with what the delivery needs from its application."""

    outbox_id: int
    attempts: int
    kind: str
    application_id: uuid.UUID
    status: str
    paid_at: datetime | None
    created_at: datetime
    applicant: dict[str, Any]
    vehicle: dict[str, Any]


class DispatchError(Exception):
    """A delivery that failed; its message is safe to store (no personal data)."""


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    """Capped exponential backoff: base, 2 x base, 4 x base, and so on up to the cap."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def retry_kind(retry: int) -> str:
    """The outbox kind of an application's N-th permit retry (N >= 1)."""
    return f"{RETRY_KIND_PREFIX}{retry}"


def retry_of(kind: str) -> int | None:
    """0 for `permit_request`, N for `permit_request_r<N>`, None for any other kind."""
    if kind == KIND:
        return 0
    suffix = kind.removeprefix(RETRY_KIND_PREFIX)
    if kind.startswith(RETRY_KIND_PREFIX) and suffix.isascii() and suffix.isdigit():
        retry = int(suffix)
        return retry if retry >= 1 and str(retry) == suffix else None
    return None


def request_name(application_id: uuid.UUID, retry: int = 0) -> str:
    """The PermitRequest's name: the application's id, with `-r<N>` for its N-th retry."""
    return str(application_id) if retry == 0 else f"{application_id}-r{retry}"


def retry_in_name(application_id: uuid.UUID, name: str) -> int | None:
    """The retry a PermitRequest's name stands for (the inverse of `request_name`), or None when
    the name is not one of this application's."""
    if name == str(application_id):
        return 0
    suffix = name.removeprefix(f"{application_id}-r")
    if suffix != name and suffix.isascii() and suffix.isdigit() and suffix[0] != "0":
        return int(suffix)
    return None


def secret_name(name: str | uuid.UUID) -> str:
    """The applicant Secret of the PermitRequest `name`."""
    return f"{name}-applicant"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(application_id: uuid.UUID) -> dict[str, str]:
    # An application id is not personal data; names, CURP, email and phone never go in labels.
    return {"app.kubernetes.io/managed-by": MANAGED_BY, APPLICATION_LABEL: str(application_id)}


def _pointer(*parts: str) -> str:
    """An RFC 6901 JSON pointer (label keys hold `/`)."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _is_ours(application_id: uuid.UUID) -> list[dict[str, Any]]:
    """JSON patch tests: the Secret is the one the dispatcher makes for this application.

    A patch that starts with these changes nothing unless all hold (kube answers 422), so the
    dispatcher can write to an existing Secret without reading it first.
    """
    tests = [
        {"op": "test", "path": _pointer("metadata", "labels", key), "value": value}
        for key, value in _labels(application_id).items()
    ]
    return [*tests, {"op": "test", "path": "/type", "value": "Opaque"}]


def _secret_bytes(data: dict[str, str]) -> dict[str, str]:
    """A Secret's `data` (base64), as kube stores the `stringData` it was created with."""
    return {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}


def _describe(exc: BaseException) -> str:
    """What went wrong, for `last_error` and the log: never a value from the application."""
    if isinstance(exc, DispatchError):
        return str(exc)[:512]
    if isinstance(exc, KubeError):
        return f"Kubernetes API {exc.status} {exc.reason}".strip()[:512]
    if isinstance(exc, ValidationError):
        # Pydantic's own text echoes the input: keep only the failing fields.
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        return f"invalid application data: {', '.join(fields)}"[:512]
    return database_cause(exc)[:512]


class Dispatcher:
    def __init__(self, settings: ApiSettings, engine: Engine, metrics: DispatcherMetrics) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.namespace = settings.kubernetes_namespace
        self.kube = ApiKube(settings.kubernetes_timeout_seconds)
        self._mailer = Mailer(settings)

    async def close(self) -> None:
        await self.kube.reset()

    # --- the database side (blocking; run in a thread) -------------------------------------------

    def _claim(self, now: datetime) -> list[Claimed]:
        lease = now + timedelta(seconds=self.settings.dispatcher_lease_seconds)
        with self.engine.begin() as conn:
            due = (
                select(Outbox.id)
                .where(
                    Outbox.dispatched_at.is_(None),
                    Outbox.next_attempt_at <= now,
                    or_(
                        Outbox.kind == KIND,
                        Outbox.kind.startswith(RETRY_KIND_PREFIX, autoescape=True),
                    ),
                )
                .order_by(Outbox.next_attempt_at, Outbox.id)
                .limit(self.settings.dispatcher_batch_size)
                .with_for_update(skip_locked=True)
            )
            ids = list(conn.execute(due).scalars())
            if not ids:
                return []
            conn.execute(update(Outbox).where(Outbox.id.in_(ids)).values(next_attempt_at=lease))
            rows = conn.execute(
                select(
                    Outbox.id,
                    Outbox.attempts,
                    Outbox.kind,
                    Outbox.created_at,
                    Application.id.label("application_id"),
                    Application.status,
                    Application.paid_at,
                    Application.first_name,
                    Application.last_name,
                    Application.maternal_surname,
                    Application.curp,
                    Application.email,
                    Application.phone,
                    Application.plates,
                    Application.make,
                    Application.line,
                    Application.model_year,
                    Application.service_type,
                )
                .join(Application, Application.id == Outbox.application_id)
                .where(Outbox.id.in_(ids))
                .order_by(Outbox.next_attempt_at, Outbox.id)
            ).all()
        return [
            Claimed(
                outbox_id=row.id,
                attempts=row.attempts,
                kind=row.kind,
                application_id=row.application_id,
                status=row.status,
                paid_at=row.paid_at,
                created_at=row.created_at,
                applicant={
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "maternal_surname": row.maternal_surname or "",
                    "curp": row.curp,
                    "email": row.email,
                    "phone": row.phone or "",
                },
                vehicle={
                    "plates": row.plates,
                    "make": row.make,
                    "line": row.line,
                    "model_year": row.model_year,
                    "service_type": row.service_type,
                },
            )
            for row in rows
        ]

    def _succeeded(self, row: Claimed, permit_request: str | None, note: str | None) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            # The application's row first, as the mirror locks it before writing the permit's
            # row: the two meeting one new PermitRequest then queue instead of deadlocking
            # (each holding its uncommitted permit row or the application's lock).
            conn.execute(
                select(Application.id).where(Application.id == row.application_id).with_for_update()
            )
            conn.execute(
                update(Outbox)
                .where(Outbox.id == row.outbox_id)
                .values(dispatched_at=now, attempts=row.attempts + 1, last_error=note)
            )
            retry = retry_of(row.kind)
            if permit_request is not None and retry is not None:
                # The permit's row, if the retry service or the mirror has not made it yet.
                ensure_permit(conn, self.engine, row.application_id, retry, permit_request, now)

    def _failed(self, row: Claimed, error: str) -> None:
        attempts = row.attempts + 1
        due = utcnow() + backoff(
            attempts,
            self.settings.dispatcher_backoff_seconds,
            self.settings.dispatcher_max_backoff_seconds,
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(Outbox)
                .where(Outbox.id == row.outbox_id, Outbox.dispatched_at.is_(None))
                .values(attempts=attempts, next_attempt_at=due, last_error=error[:512])
            )

    def _count_pending(self) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(Outbox).where(Outbox.dispatched_at.is_(None))
            ).scalar_one()
        return int(count)

    # --- the Kubernetes side -------------------------------------------------------------------

    def _name(self, row: Claimed) -> str:
        retry = retry_of(row.kind)
        if retry is None:
            raise DispatchError(f"unknown outbox kind {row.kind[:32]}")
        return request_name(row.application_id, retry)

    def _manifests(self, row: Claimed) -> tuple[JSON, JSON, Applicant]:
        applicant = Applicant.model_validate(row.applicant)
        name = self._name(row)
        spec = PermitRequestSpec(
            application_id=str(row.application_id),
            secret_name=secret_name(name),
            pool=self.settings.permit_pool,
            priority=0,
            paid_at=row.paid_at or row.created_at,
            vehicle=Vehicle.model_validate(row.vehicle),
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name(name),
                "namespace": self.namespace,
                "labels": _labels(row.application_id),
            },
            "type": "Opaque",
            "stringData": applicant.secret_data(),
        }
        wire = spec.wire()
        wire["paidAt"] = _time(spec.paid_at or row.created_at)
        request = {
            "apiVersion": API_VERSION,
            "kind": "PermitRequest",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": _labels(row.application_id),
                # Born with it: no second call, and no moment when it could go unrecorded.
                "finalizers": [FINALIZER],
            },
            "spec": wire,
        }
        return secret, request, applicant

    async def _patch_secret(self, row: Claimed, name: str, ops: list[dict[str, Any]]) -> None:
        """A JSON patch of the applicant Secret that first checks it is this application's."""
        try:
            await self.kube.patch(
                secrets(self.namespace, secret_name(name)),
                [*_is_ours(row.application_id), *ops],
                JSON_PATCH,
            )
        except KubeError as error:
            if error.status != 422:
                raise
            raise DispatchError(
                f"Secret {secret_name(name)} exists and is not this application's "
                "(managed-by, application labels or type differ); left untouched"
            ) from error

    async def _deliver(self, row: Claimed) -> str:
        """Creates (or finds) the Secret and the PermitRequest; returns the request's name."""
        secret, request, applicant = self._manifests(row)
        name = self._name(row)
        try:
            await self.kube.create(secrets(self.namespace), secret)
        except KubeError as error:
            if error.status != 409:
                raise
            # Delivered before: the data as of now (the application's may have changed since).
            data = _secret_bytes(applicant.secret_data())
            await self._patch_secret(row, name, [{"op": "add", "path": "/data", "value": data}])
        created: JSON | None
        try:
            created = await self.kube.create(permit_requests(self.namespace), request)
        except KubeError as error:
            if error.status != 409:
                raise
            created = await self.kube.read(permit_requests(self.namespace, name))
        uid = ((created or {}).get("metadata") or {}).get("uid")
        if not uid:
            raise DispatchError("PermitRequest has no uid")
        owner = {
            "apiVersion": API_VERSION,
            "kind": "PermitRequest",
            "name": name,
            "uid": uid,
            "controller": False,
            "blockOwnerDeletion": True,
        }
        # `add` replaces the whole list: the same result however often it is sent.
        await self._patch_secret(
            row, name, [{"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}]
        )
        return name

    # --- the loop ------------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> int:
        """Delivers the rows due now; returns how many were delivered."""
        rows = await asyncio.to_thread(self._claim, now or utcnow())
        delivered = 0
        for row in rows:
            extra = {"application": str(row.application_id), "attempt": row.attempts + 1}
            if row.status in SKIP_STATUSES:
                note = f"skipped: application is {row.status}"
                await asyncio.to_thread(self._succeeded, row, None, note)
                log.warning("outbox row skipped (%s)", row.status, extra=extra)
                continue
            try:
                name = await self._deliver(row)
            except Exception as exc:
                error = _describe(exc)
                self.metrics.errors.inc()
                log.warning("outbox delivery failed: %s", error, extra=extra)
                if not isinstance(exc, KubeError | ValidationError | DispatchError):
                    await self.close()  # a fresh client next time, after the API comes back
                await asyncio.to_thread(self._failed, row, error)
                continue
            await asyncio.to_thread(self._succeeded, row, name, None)
            self.metrics.dispatched.inc()
            delivered += 1
            log.info("PermitRequest dispatched", extra={**extra, "permitrequest": name})
        self.metrics.pending.set(await asyncio.to_thread(self._count_pending))
        await self._send_notices()
        return delivered

    async def _send_notices(self) -> None:
        """The permit ready / failed mails (see notices.py); a failure waits for the next pass."""
        try:
            await asyncio.to_thread(
                send_permit_notices,
                self.engine,
                self.settings,
                self._mailer,
                None,
                self.metrics.permits,
            )
        except Exception as exc:
            log.warning("permit notices failed: %s", type(exc).__name__)

    async def run_forever(self) -> None:
        """Runs until cancelled; a failed pass (the database down) is logged and tried again."""
        while True:
            delivered = 0
            try:
                delivered = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.errors.inc()
                log.warning("outbox pass failed: %s", _describe(exc))
            if delivered < self.settings.dispatcher_batch_size:
                await asyncio.sleep(self.settings.dispatcher_interval_seconds)


async def _main(once: bool) -> None:
    settings = ApiSettings()
    engine = make_engine(settings)
    dispatcher = Dispatcher(settings, engine, DispatcherMetrics(CollectorRegistry()))
    try:
        if once:
            delivered = await dispatcher.run_once()
            log.info("delivered %d outbox rows", delivered)
        else:
            await dispatcher.run_forever()
    finally:
        await dispatcher.close()
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    from permisos.logs import configure as configure_logging

    parser = argparse.ArgumentParser(
        prog="python -m permisos_api.dispatcher",
        description="Deliver paid applications from the outbox to Kubernetes as PermitRequests.",
    )
    parser.add_argument("--once", action="store_true", help="one pass over the due rows, then exit")
    args = parser.parse_args(argv)
    configure_logging(ApiSettings().log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.once))


if __name__ == "__main__":
    main()
