"""The PermitRequest mirror (`permisos_api.mirror`) on the real kube-apiserver and the real
PostgreSQL, as the API's ServiceAccount bound to the API's declared rules (`cluster`).

No operator runs here: the tests play it, as envtest suites do, writing each phase into the
PermitRequest's status subresource as cluster-admin with the timestamps, attempts, conditions
and result the operator writes. What they check is what an applicant and an admin see: the
application's row, its history, and whether a deleted request went only once its outcome was
recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from permisos.kube import JSON_PATCH, parse_time
from permisos.resources import (
    TERMINAL_PHASES,
    Artifact,
    AttemptRecord,
    Condition,
    PermitRequestStatus,
    PermitResult,
    Phase,
)
from permisos_api.db import make_engine
from permisos_api.dispatcher import Dispatcher, DispatcherMetrics
from permisos_api.kube import FINALIZER
from permisos_api.mirror import Mirror, MirrorMetrics, Snapshot, record
from permisos_api.mirror.snapshot import snapshot_of
from permisos_api.models import Application, Permit, PermitHistory
from permisos_api.schemas import ApplicationOut
from permisos_api.settings import ApiSettings
from tests.cluster import eventually
from tests.databases import DatabaseProxy, fresh_database
from tests.job_controller import permit_artifacts
from tests.namespaces import Namespace, permit_request

from .conftest import PERSONAL, Api, Cluster, paid_application, paid_applications

# How each phase ends the attempt in flight, in the runner's words.
OUTCOMES = {"Retrying": "retryable", "Succeeded": "succeeded", "Failed": "permanent"}


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database of this module's own: the dispatcher here must deliver these tests' outbox
    rows only, not those other modules left behind."""
    with fresh_database("permisos_mirror") as url:
        yield url


@pytest.fixture
def settings(settings: ApiSettings, cluster: Cluster) -> ApiSettings:
    """The API's settings in the test's namespace, with quick retries."""
    return settings.model_copy(
        update={
            "kubernetes_namespace": cluster.namespace,
            "mirror_retry_seconds": 0.5,
            "database_connect_timeout_seconds": 1,
        }
    )


@dataclass
class Replica:
    """One API replica's mirror loop, run as the API's lifespan runs it."""

    task: asyncio.Task[None]
    registry: CollectorRegistry

    def count(self, metric: str) -> float:
        return self.registry.get_sample_value(metric) or 0.0

    @property
    def writes(self) -> float:
        return self.count("permisos_mirror_writes_total")

    @property
    def failures(self) -> float:
        return self.count("permisos_mirror_write_failures_total")

    @property
    def alive(self) -> bool:
        return not self.task.done()

    async def watching(self) -> bool:
        return self.count("permisos_mirror_watching") == 1

    async def wrote(self, states: int) -> None:
        """Exactly `states` states written in all (the counter moves just after each commit)."""

        async def counted() -> bool:
            return self.writes >= states

        await eventually(counted)
        assert self.writes == states


StartReplica = Callable[[ApiSettings], Awaitable[Replica]]


@pytest.fixture
async def replicas(cluster: Cluster) -> AsyncIterator[StartReplica]:
    """Starts mirror loops, each returned once it has listed and watches (a phase entered and
    left before that is not seen); each must still run at the end of the test."""
    started: list[tuple[Replica, Engine]] = []

    async def start(settings: ApiSettings) -> Replica:
        engine = make_engine(settings)
        registry = CollectorRegistry()
        mirror = Mirror(settings, engine, MirrorMetrics(registry))
        replica = Replica(asyncio.create_task(mirror.run_forever()), registry)
        started.append((replica, engine))
        await eventually(replica.watching)
        return replica

    yield start
    for replica, _ in started:
        assert replica.alive, replica.task
        replica.task.cancel()
    for replica, engine in started:
        with contextlib.suppress(asyncio.CancelledError):
            await replica.task
        engine.dispose()


class Operator:
    """The operator's status writes for one PermitRequest, as its lifecycle makes them."""

    def __init__(self, kube: Namespace, name: str) -> None:
        self.kube = kube
        self.name = name
        self.status = PermitRequestStatus()

    async def enter(self, phase: Phase, reason: str, message: str = "", folio: str = "") -> None:
        now = datetime.now(UTC)
        status = self.status.model_copy(deep=True)
        if phase == "Running":
            status.attempts += 1
            status.started_at = status.started_at or now
            status.current_job = f"{self.name}-a{status.attempts}"
        elif status.current_job and phase in OUTCOMES:
            status.last_attempt = AttemptRecord(
                number=status.attempts,
                job=status.current_job,
                outcome=OUTCOMES[phase],
                reason=reason,
                message=message,
                finished_at=now,
            )
            status.current_job = None
        if phase == "Queued":
            status.queued_at, status.next_attempt_at = now, None
        if phase == "Retrying":
            status.next_attempt_at = now + timedelta(seconds=1)
        if phase in TERMINAL_PHASES:
            status.completed_at = now
        if folio:
            artifacts = [Artifact.model_validate(a) for a in permit_artifacts(self.name, folio)]
            status.result = PermitResult(folio=folio, artifacts=artifacts)
        status.phase = phase
        ready = "True" if phase == "Succeeded" else "False"
        status.conditions = [
            Condition(
                type="Ready", status=ready, reason=reason, message=message, last_transition_time=now
            )
        ]
        # The whole status, replaced (as an update of the status subresource would).
        patch = [{"op": "add", "path": "/status", "value": status.wire()}]
        await self.kube.patch("permitrequests", self.name, patch, "status", kind=JSON_PATCH)
        self.status = status

    async def play(self, *phases: tuple[Phase, str]) -> None:
        for phase, reason in phases:
            await self.enter(phase, reason)


def held_request(name: str) -> dict[str, Any]:
    """A PermitRequest as the dispatcher creates it: with the mirror's finalizer."""
    body = permit_request(name, pool="default")
    body["metadata"]["finalizers"] = [FINALIZER]
    return body


def application(engine: Engine, app_id: uuid.UUID) -> Application:
    """The application as the API reads it, with its current permit."""
    with Session(engine, expire_on_commit=False) as session:
        app = session.get_one(Application, app_id)
        assert app.permit is None or app.permit.application_id == app_id  # loaded now
        return app


def history(engine: Engine, app_id: uuid.UUID) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(PermitHistory.phase, PermitHistory.attempt)
            .where(PermitHistory.application_id == app_id)
            .order_by(PermitHistory.transitioned_at, PermitHistory.id)
        ).all()
    return [(r.phase, r.attempt) for r in rows]


async def until_row(engine: Engine, app_id: uuid.UUID, phase: str) -> Any:
    async def probe() -> Any:
        row = application(engine, app_id)
        return row if row.permit_phase == phase else None

    return await eventually(probe)


async def terminating(kube: Namespace, name: str) -> bool:
    request = await kube.get("permitrequests", name)
    return bool(request and request["metadata"].get("deletionTimestamp"))


async def until_gone(kube: Namespace, name: str) -> None:
    async def gone() -> bool:
        return await kube.get("permitrequests", name) is None

    await eventually(gone)


def assert_rejected(engine: Engine, app_id: uuid.UUID) -> None:
    """What the applicant sees after REJECTED: the portal's refusal, in order, and final."""
    row = application(engine, app_id)
    assert (row.permit_phase, row.status, row.permit_reason) == (
        "Failed",
        "permit_failed",
        "PortalRejected",
    )
    assert history(engine, app_id) == [("Queued", 0), ("Running", 1), ("Failed", 1)]


REJECTED = (("Queued", "Queued"), ("Running", "JobCreated"), ("Failed", "PortalRejected"))
RETRIED = (
    ("Queued", "Queued"),
    ("Running", "JobCreated"),
    ("Retrying", "PortalTimeout"),
    ("Queued", "Queued"),
    ("Running", "JobCreated"),
)


async def test_each_phase_reaches_the_application_and_its_history(
    settings: ApiSettings,
    engine: Engine,
    kube: Namespace,
    replicas: StartReplica,
) -> None:
    ok, retried = paid_applications(engine, 2, outbox=True)
    # Made as in production: the dispatcher creates them, the finalizer already on.
    dispatcher = Dispatcher(settings, engine, DispatcherMetrics(CollectorRegistry()))
    try:
        assert await dispatcher.run_once() == 2
    finally:
        await dispatcher.close()
    replica = await replicas(settings)

    first = Operator(kube, str(ok))
    await first.play(("Queued", "Queued"), ("Running", "JobCreated"))
    await until_row(engine, ok, "Running")
    await first.enter("Succeeded", "PermitIssued", "folio F-7 issued on attempt 1", folio="F-7")
    row = await until_row(engine, ok, "Succeeded")
    assert row.status == "permit_ready"
    assert row.folio == "F-7" and row.permit_reason == "PermitIssued"
    assert row.permit_message == "folio F-7 issued on attempt 1"
    assert row.permit_attempts == 1 and row.permit_updated_at is not None
    assert [a["kind"] for a in row.permit_artifacts] == ["permit", "certificate", "placard"]
    assert row.permit_artifacts[0]["key"] == f"permits/{ok}/permit-F-7.pdf"
    assert history(engine, ok) == [("Queued", 0), ("Running", 1), ("Succeeded", 1)]

    # A retryable failure, then success: Retrying is in the history, each transition once.
    second = Operator(kube, str(retried))
    await second.play(*RETRIED)
    await second.enter("Succeeded", "PermitIssued", folio="F-8")
    row = await until_row(engine, retried, "Succeeded")
    assert row.status == "permit_ready" and row.folio == "F-8" and row.permit_attempts == 2
    assert history(engine, retried) == [
        ("Queued", 0),
        ("Running", 1),
        ("Retrying", 1),
        ("Queued", 1),
        ("Running", 2),
        ("Succeeded", 2),
    ]
    # Each transition names the PermitRequest it belongs to.
    for app_id in (ok, retried):
        with engine.connect() as conn:
            names = conn.execute(
                select(PermitHistory.permit_request).where(PermitHistory.application_id == app_id)
            ).scalars()
            assert set(names) == {str(app_id)}
    await replica.wrote(9)  # each transition once
    assert replica.failures == 0


async def test_a_deleted_request_goes_only_after_its_outcome_is_recorded(
    settings: ApiSettings,
    engine: Engine,
    cluster: Cluster,
    kube: Namespace,
    replicas: StartReplica,
) -> None:
    app_id = paid_application(engine)
    name = str(app_id)
    await replicas(settings)
    # Made before the dispatcher created requests with the finalizer: the mirror adds it.
    await kube.create("permitrequests", permit_request(name, pool="default"))

    async def held() -> bool:
        request = await kube.get("permitrequests", name) or {}
        return bool(request["metadata"].get("finalizers") == [FINALIZER])

    await eventually(held)
    await Operator(kube, name).play(*REJECTED)
    await kube.delete("permitrequests", name)  # at once, whatever the mirror has written yet
    await until_gone(kube, name)

    assert_rejected(engine, app_id)
    with engine.connect() as conn:
        recorded = conn.execute(
            select(PermitHistory.recorded_at).where(
                PermitHistory.application_id == app_id, PermitHistory.phase == "Failed"
            )
        ).scalar_one()
    # The audit log: the API's own patches of the request, the finalizer on, then off, and the
    # one that let the request go came after the outcome was in the database.
    patches = [
        e
        for e in cluster.control_plane.audit_events()
        if e["user"].get("username") == cluster.user
        and e["verb"] == "patch"
        and (e.get("objectRef") or {}).get("name") == name
        and e.get("stage") == "ResponseComplete"
        and e.get("responseStatus", {}).get("code") == 200
    ]
    assert len(patches) == 2
    released = parse_time(patches[-1]["requestReceivedTimestamp"])
    assert released is not None and recorded < released


async def test_the_api_runs_the_mirror_beside_the_dispatcher(
    engine: Engine, kube: Namespace, api: Api
) -> None:
    """The app's own lifespan, as uvicorn runs it: the dispatcher creates the request, the
    operator (played) queues it, and the mirror shows it on the application."""
    app_id = paid_application(engine, outbox=True)
    app = api.app(dispatcher_interval_seconds=0.2)
    client = api.client(app)
    async with app.router.lifespan_context(app):

        async def created() -> dict[str, Any] | None:
            return await kube.get("permitrequests", str(app_id))

        assert (await eventually(created))["metadata"]["finalizers"] == [FINALIZER]
        await Operator(kube, str(app_id)).enter("Queued", "Queued")
        await until_row(engine, app_id, "Queued")
        metrics = (await client.get("/metrics")).text
        assert "permisos_mirror_watching 1.0" in metrics
        assert "permisos_mirror_write_failures_total 0.0" in metrics
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["kubernetes"]["status"] == "ok"
    assert history(engine, app_id) == [("Queued", 0)]


async def test_the_applicant_reads_why_the_permit_waits_over_http(
    engine: Engine, kube: Namespace, api: Api, make_user: Callable[..., Any]
) -> None:
    """The operator's Admitted condition and queue place, through the mirror, to the owner's
    GET /v1/applications/{id}, in Spanish."""
    user = await make_user()
    app_id = paid_application(engine, outbox=True)
    with Session(engine) as session, session.begin():
        session.get_one(Application, app_id).owner_id = uuid.UUID(user.id)
    app = api.app(dispatcher_interval_seconds=0.2)
    client = api.client(app)
    path = f"/v1/applications/{app_id}"
    async with app.router.lifespan_context(app):

        async def created() -> dict[str, Any] | None:
            return await kube.get("permitrequests", str(app_id))

        await eventually(created)
        played = Operator(kube, str(app_id))
        await played.enter("Queued", "Queued", "waiting for a runner in pool default")
        # The pool's portal is in maintenance until 06:00 in Mexico City; third in line.
        waiting = {
            "type": "Admitted",
            "status": "False",
            "reason": "MaintenanceWindow",
            "message": "The portal is in maintenance until 2026-12-08T12:00:00Z.",
            "lastTransitionTime": "2026-12-08T08:30:00Z",
        }
        patch = [
            {"op": "add", "path": "/status/conditions/-", "value": waiting},
            {"op": "add", "path": "/status/queuePosition", "value": 3},
            {"op": "add", "path": "/status/estimatedStartAt", "value": "2026-12-08T12:00:00Z"},
        ]
        await kube.patch("permitrequests", str(app_id), patch, "status", kind=JSON_PATCH)

        async def told() -> dict[str, Any] | None:
            r = await client.get(path, headers=user.bearer())
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body if body.get("permit_wait") else None

        shown = await eventually(told)
        assert shown["permit_wait"] == (
            "El portal del gobierno está en mantenimiento. Continuará a partir del 08/12/2026 a "
            "las 06:00 (hora del centro de México)."
        )
        # Another applicant cannot read it.
        stranger = await make_user()
        r = await client.get(path, headers=stranger.bearer())
        assert r.status_code == 404, r.text


async def test_database_outage_catches_up_and_deletion_waits_for_the_final_state(
    settings: ApiSettings,
    engine: Engine,
    kube: Namespace,
    replicas: StartReplica,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="permisos.api.mirror")
    proxy = DatabaseProxy(settings.database_url)
    await proxy.start()
    try:
        replica = await replicas(settings.model_copy(update={"database_url": proxy.url}))
        done, deleted = paid_applications(engine, 2)
        for app_id in (done, deleted):
            await kube.create("permitrequests", held_request(str(app_id)))
        finishing, failing = Operator(kube, str(done)), Operator(kube, str(deleted))
        await finishing.play(("Queued", "Queued"), ("Running", "JobCreated"))
        await until_row(engine, done, "Running")

        await proxy.stop()  # the database is unreachable from here on
        await finishing.enter("Succeeded", "PermitIssued", folio="F-9")
        await failing.play(*REJECTED)
        await kube.delete("permitrequests", str(deleted))
        await asyncio.sleep(2)  # several retries fail meanwhile; the finalizer holds
        assert await terminating(kube, str(deleted))
        assert application(engine, done).permit_phase == "Running"
        assert application(engine, deleted).permit_phase is None
        assert replica.failures >= 1
        assert replica.count("permisos_mirror_pending") == 2

        await proxy.start()  # same port: the database is back
        row = await until_row(engine, done, "Succeeded")
        assert row.status == "permit_ready" and row.folio == "F-9"
        assert history(engine, done) == [("Queued", 0), ("Running", 1), ("Succeeded", 1)]
        await until_gone(kube, str(deleted))
        assert_rejected(engine, deleted)
        assert replica.count("permisos_mirror_pending") == 0
    finally:
        if proxy.server is not None:
            await proxy.stop()
    # Each failure was logged with the request's name, never with personal data.
    failed = [r for r in caplog.records if r.getMessage().startswith("could not mirror phase")]
    assert {getattr(r, "permitrequest", None) for r in failed} >= {str(deleted)}
    for logged in caplog.records:
        for value in PERSONAL.values():
            assert value not in logged.getMessage()


async def test_two_replicas_write_each_transition_once_and_both_keep_running(
    settings: ApiSettings,
    engine: Engine,
    kube: Namespace,
    replicas: StartReplica,
) -> None:
    first, second = await replicas(settings), await replicas(settings)
    apps = paid_applications(engine, 3)
    for app_id in apps:
        await kube.create("permitrequests", held_request(str(app_id)))
    issued, rejected, retried = (Operator(kube, str(a)) for a in apps)
    await asyncio.gather(
        issued.play(("Queued", "Queued"), ("Running", "JobCreated"), ("Succeeded", "PermitIssued")),
        rejected.play(*REJECTED),
        retried.play(*RETRIED, ("Succeeded", "PermitIssued")),
    )
    await kube.delete("permitrequests", rejected.name)  # both replicas race to let it go
    await until_row(engine, apps[0], "Succeeded")
    await until_row(engine, apps[2], "Succeeded")
    await until_gone(kube, rejected.name)

    assert history(engine, apps[0]) == [("Queued", 0), ("Running", 1), ("Succeeded", 1)]
    assert_rejected(engine, apps[1])
    assert [phase for phase, _ in history(engine, apps[2])] == [
        "Queued",
        "Running",
        "Retrying",
        "Queued",
        "Running",
        "Succeeded",
    ]
    # Both wrote (the same rows, idempotently), neither failed, and both still run.
    assert first.writes >= 1 and second.writes >= 1
    assert first.failures == second.failures == 0
    assert first.alive and second.alive


async def test_a_broken_watch_lists_again_and_writes_only_what_changed(
    settings: ApiSettings,
    engine: Engine,
    cluster: Cluster,
    kube: Namespace,
    replicas: StartReplica,
) -> None:
    replica = await replicas(settings)
    quiet, moving, ending = paid_applications(engine, 3)
    operators = {}
    for app_id in (quiet, moving, ending):
        await kube.create("permitrequests", held_request(str(app_id)))
        operators[app_id] = Operator(kube, str(app_id))
        await operators[app_id].enter("Queued", "Queued")
    await operators[ending].enter("Running", "JobCreated")
    await until_row(engine, ending, "Running")
    await until_row(engine, moving, "Queued")
    await until_row(engine, quiet, "Queued")
    await replica.wrote(4)

    await cluster.stop()  # the API cannot reach the apiserver; the operator (the test) can
    await operators[moving].enter("Running", "JobCreated")
    await operators[ending].enter("Failed", "PortalRejected")
    await kube.delete("permitrequests", str(ending))
    await asyncio.sleep(1.5)
    assert await terminating(kube, str(ending))
    assert not await replica.watching()
    await cluster.restart()

    await until_row(engine, moving, "Running")
    await until_row(engine, ending, "Failed")
    await until_gone(kube, str(ending))
    # The relist wrote the two changes and skipped the request that did not change.
    await replica.wrote(6)
    assert replica.count("permisos_mirror_kubernetes_errors_total") >= 1
    assert await replica.watching()
    assert application(engine, quiet).permit_phase == "Queued"


# --- the writes themselves ----------------------------------------------------------------------


def test_an_older_transition_never_overwrites_a_newer_one(engine: Engine) -> None:
    app_id = paid_application(engine)
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def snap(phase: str, attempt: int, at: datetime) -> Snapshot:
        return Snapshot(app_id, phase, phase, f"{phase} message", attempt, at)

    assert record(engine, snap("Running", 1, t0 + timedelta(seconds=10)))
    assert record(engine, snap("Queued", 0, t0))  # late, older: history only
    row = application(engine, app_id)
    assert row.permit_phase == "Running" and row.permit_attempts == 1
    assert row.status == "paid"

    done = snap("Failed", 1, t0 + timedelta(seconds=20))
    assert record(engine, done)
    assert record(engine, done)  # replayed: idempotent
    # Terminal is final, even for something that claims to be newer.
    assert record(engine, snap("Retrying", 1, t0 + timedelta(seconds=30)))
    row = application(engine, app_id)
    assert row.permit_phase == "Failed" and row.status == "permit_failed"
    assert sorted(history(engine, app_id)) == sorted(
        [("Queued", 0), ("Running", 1), ("Failed", 1), ("Retrying", 1)]
    )
    # An application that is not in the database is not mirrored.
    assert not record(engine, Snapshot(uuid.uuid4(), "Queued", "Queued", None, 0, t0))


def test_only_the_current_permit_request_moves_the_application(engine: Engine) -> None:
    app_id = paid_application(engine)
    retry = f"{app_id}-r1"
    t0 = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)

    def snap(name: str, phase: str, attempt: int, at: datetime) -> Snapshot:
        return Snapshot(app_id, phase, phase, None, attempt, at, name=name)

    # An admin's retry: a new permit, current from now on (what the retry service writes).
    with Session(engine) as session, session.begin():
        app = session.get_one(Application, app_id)
        app.permit_retries = 1
        session.add(Permit(application_id=app_id, retry=1, request_name=retry))
    assert record(engine, snap(retry, "Running", 1, t0 + timedelta(seconds=10)))
    # The old, failed PermitRequest (its events replayed, even a newer-looking one).
    assert record(engine, snap(str(app_id), "Failed", 2, t0 + timedelta(seconds=20)))
    row = application(engine, app_id)
    assert row.permit_phase == "Running" and row.status == "paid"
    assert row.permit_attempts == 1
    assert record(engine, snap(retry, "Succeeded", 1, t0 + timedelta(seconds=30)))
    row = application(engine, app_id)
    assert row.permit_phase == "Succeeded" and row.status == "permit_ready"
    with engine.connect() as conn:
        # Each PermitRequest kept what it came to, in its own row.
        permits = conn.execute(
            select(Permit.request_name, Permit.phase, Permit.attempts)
            .where(Permit.application_id == app_id)
            .order_by(Permit.retry)
        ).all()
        assert permits == [(str(app_id), "Failed", 2), (retry, "Succeeded", 1)]
        names = conn.execute(
            select(PermitHistory.phase, PermitHistory.permit_request).where(
                PermitHistory.application_id == app_id
            )
        ).all()
    assert sorted(names) == sorted(
        [("Running", retry), ("Failed", str(app_id)), ("Succeeded", retry)]
    )


def test_a_waiting_request_tells_the_applicant_why_and_where_it_is_in_line(engine: Engine) -> None:
    app_id = paid_application(engine)
    queued_at = datetime(2026, 12, 8, 8, 30, tzinfo=UTC)
    start = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)  # 06:00 in Mexico City
    waiting = {
        "type": "Admitted",
        "status": "False",
        "reason": "MaintenanceWindow",
        "message": "The portal is in maintenance; attempts start again at 2026-12-08T12:00:00Z.",
        "lastTransitionTime": "2026-12-08T08:30:00Z",
    }
    body = {
        "metadata": {"name": str(app_id)},
        "spec": {"applicationId": str(app_id)},
        "status": {
            "phase": "Queued",
            "queuedAt": "2026-12-08T08:30:00Z",
            "conditions": [waiting],
            "queuePosition": 12,
            "estimatedStartAt": "2026-12-08T12:00:00Z",
        },
    }
    snap = snapshot_of(body)
    assert snap is not None and snap.transitioned_at == queued_at
    assert record(engine, snap)
    row = application(engine, app_id)
    assert (row.permit_waiting_reason, row.permit_queue_position) == ("MaintenanceWindow", 12)
    assert row.permit_estimated_start_at == start
    shown = ApplicationOut.model_validate(row).model_dump(mode="json")
    assert shown["permit_wait"] == (
        "El portal del gobierno está en mantenimiento. Continuará a partir del 08/12/2026 a las "
        "06:00 (hora del centro de México)."
    )
    # In line behind eleven others, the portal healthy.
    body["status"]["conditions"] = [{**waiting, "reason": "PoolFull", "message": "waiting"}]
    snap = snapshot_of(body)
    assert snap is not None and record(engine, snap)
    shown = ApplicationOut.model_validate(application(engine, app_id)).model_dump(mode="json")
    assert shown["permit_wait"].startswith("Tu trámite es el número 12 en la fila. Inicio estimado")
    # Admitted: it no longer waits.
    body["status"] = {
        "phase": "Running",
        "queuedAt": "2026-12-08T08:30:00Z",
        "startedAt": "2026-12-08T12:00:05Z",
        "attempts": 1,
        "conditions": [{**waiting, "status": "True", "reason": "Admitted", "message": "runs"}],
    }
    snap = snapshot_of(body)
    assert snap is not None and record(engine, snap)
    row = application(engine, app_id)
    assert row.permit_waiting_reason is None and row.permit_queue_position is None
    assert ApplicationOut.model_validate(row).permit_wait is None
