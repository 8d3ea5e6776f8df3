"""The phase mirror: PermitRequest transitions written into the API's database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from permisos_api.db import make_engine
from permisos_api.models import Application, PermitHistory
from permisos_api.settings import ApiSettings
from permisos_operator.mirror import Mirror, Snapshot
from tests.api.conftest import PERSONAL, paid_application
from tests.cluster import eventually
from tests.databases import DatabaseProxy, fresh_database
from tests.job_controller import JobController
from tests.namespaces import Namespace, permit_request, runner_pool

from .conftest import StartOperator

FAST_RETRIES = {"maxAttempts": 3, "backoffSeconds": 1, "maxBackoffSeconds": 2}


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with fresh_database("permisos_mirror") as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    # The API's own engine settings.
    eng = make_engine(ApiSettings(database_url=database_url))
    try:
        yield eng
    finally:
        eng.dispose()


def application(engine: Engine, app_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(Application).where(Application.id == uuid.UUID(app_id))).one()


def history(engine: Engine, app_id: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(PermitHistory.phase, PermitHistory.attempt)
            .where(PermitHistory.application_id == uuid.UUID(app_id))
            .order_by(PermitHistory.transitioned_at, PermitHistory.id)
        ).all()
    return [(r.phase, r.attempt) for r in rows]


async def until_row(engine: Engine, app_id: str, phase: str, timeout: float = 20) -> Any:
    async def probe() -> Any:
        row = application(engine, app_id)
        return row if row.permit_phase == phase else None

    return await eventually(probe, timeout)


async def until_job(jobs: JobController, name: str) -> dict[str, Any]:
    return await eventually(lambda: jobs.job(name), 20)


def mirror_env(url: str) -> dict[str, str]:
    return {
        "PERMISOS_OPERATOR_DATABASE_URL": url,
        "PERMISOS_OPERATOR_MIRROR_RETRY_SECONDS": "0.5",
        "PERMISOS_OPERATOR_DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
    }


async def test_phases_are_mirrored_into_the_application(
    ns: Namespace,
    jobs: JobController,
    start_operator: StartOperator,
    engine: Engine,
    database_url: str,
) -> None:
    await ns.create("runnerpools", runner_pool(replicas=2, retryPolicy=FAST_RETRIES))
    await start_operator(extra_env=mirror_env(database_url))
    ok, retried = str(paid_application(engine)), str(paid_application(engine))
    await ns.create("permitrequests", permit_request(ok))
    await ns.create("permitrequests", permit_request(retried))

    await until_job(jobs, f"{ok}-a1")
    await until_row(engine, ok, "Running")
    await jobs.start(f"{ok}-a1")
    await jobs.succeed(f"{ok}-a1", folio="F-7")
    row = await until_row(engine, ok, "Succeeded")
    assert row.status == "permit_ready"
    assert row.folio == "F-7" and row.permit_reason == "PermitIssued"
    assert row.permit_attempts == 1 and row.permit_updated_at is not None
    assert [a["kind"] for a in row.permit_artifacts] == ["permit", "certificate", "placard"]
    assert row.permit_artifacts[0]["key"] == f"permits/{ok}/permit-F-7.pdf"
    assert history(engine, ok) == [("Queued", 0), ("Running", 1), ("Succeeded", 1)]

    # A retryable failure, then success: Retrying is in the history, each transition once.
    await until_job(jobs, f"{retried}-a1")
    await jobs.fail(f"{retried}-a1", "retryable", "PortalTimeout", "portal took too long")
    await until_job(jobs, f"{retried}-a2")
    await jobs.succeed(f"{retried}-a2", folio="F-8")
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


async def test_database_outage_catches_up_and_deletion_waits_for_the_final_state(
    ns: Namespace,
    jobs: JobController,
    start_operator: StartOperator,
    engine: Engine,
    database_url: str,
) -> None:
    proxy = DatabaseProxy(database_url)
    await proxy.start()
    url = proxy.url
    await ns.create("runnerpools", runner_pool(replicas=2, retryPolicy=FAST_RETRIES))
    operator = await start_operator(extra_env=mirror_env(url))
    app_id = str(paid_application(engine))
    other = str(paid_application(engine))
    try:
        await ns.create("permitrequests", permit_request(app_id))
        await until_row(engine, app_id, "Running")

        await proxy.stop()  # the database is unreachable from here on
        await jobs.succeed(f"{app_id}-a1", folio="F-9")

        async def succeeded() -> bool:
            pr = await ns.get("permitrequests", app_id) or {}
            return bool(pr.get("status", {}).get("phase") == "Succeeded")

        await eventually(succeeded)
        # A second request runs and is deleted while the database is still down: it stays.
        await ns.create("permitrequests", permit_request(other))
        await until_job(jobs, f"{other}-a1")
        await jobs.fail(f"{other}-a1", "permanent", "PortalRejected", "placas con permiso")

        async def failed() -> bool:
            pr = await ns.get("permitrequests", other) or {}
            return bool(pr.get("status", {}).get("phase") == "Failed")

        await eventually(failed)
        await ns.delete("permitrequests", other)
        await eventually(lambda: _terminating(ns, other))
        assert application(engine, app_id).permit_phase == "Running"
        assert application(engine, other).permit_phase is None
        await asyncio.sleep(2)  # several retries fail meanwhile; the finalizer holds
        assert await _terminating(ns, other)

        await proxy.start()  # same port: the database is back
        row = await until_row(engine, app_id, "Succeeded")
        assert row.status == "permit_ready" and row.folio == "F-9"
        assert history(engine, app_id) == [("Queued", 0), ("Running", 1), ("Succeeded", 1)]

        async def gone() -> bool:
            return await ns.get("permitrequests", other) is None

        await eventually(gone)
        row = application(engine, other)
        assert row.permit_phase == "Failed" and row.status == "permit_failed"
        assert row.permit_reason == "PortalRejected"
        assert history(engine, other) == [("Queued", 0), ("Running", 1), ("Failed", 1)]
        assert "mirror" in operator.logs()
        for secret in PERSONAL.values():
            assert secret not in operator.logs()
    finally:
        if proxy.server is not None:
            await proxy.stop()


async def _terminating(ns: Namespace, name: str) -> bool:
    pr = await ns.get("permitrequests", name)
    return bool(pr and pr["metadata"].get("deletionTimestamp"))


def test_an_older_transition_never_overwrites_a_newer_one(
    engine: Engine, database_url: str
) -> None:
    app_id = paid_application(engine)
    mirror = Mirror(database_url)
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def snap(phase: str, attempt: int, at: datetime, **extra: Any) -> Snapshot:
        return Snapshot(app_id, phase, phase, f"{phase} message", attempt, at, **extra)

    try:
        assert mirror.record(snap("Running", 1, t0 + timedelta(seconds=10)))
        assert mirror.record(snap("Queued", 0, t0))  # late, older: history only
        row = application(engine, str(app_id))
        assert row.permit_phase == "Running" and row.permit_attempts == 1
        assert row.status == "paid"

        done = snap("Failed", 1, t0 + timedelta(seconds=20), folio=None, artifacts=None)
        assert mirror.record(done)
        assert mirror.record(done)  # replayed: idempotent
        # Terminal is final, even for something that claims to be newer.
        assert mirror.record(snap("Retrying", 1, t0 + timedelta(seconds=30)))
        row = application(engine, str(app_id))
        assert row.permit_phase == "Failed" and row.status == "permit_failed"
        assert sorted(history(engine, str(app_id))) == sorted(
            [("Queued", 0), ("Running", 1), ("Failed", 1), ("Retrying", 1)]
        )
        # An application that is not in the database (or not a UUID) is not mirrored.
        assert not mirror.record(Snapshot(uuid.uuid4(), "Queued", "Queued", None, 0, t0))
    finally:
        mirror.close()


def test_only_the_current_permit_request_moves_the_application(
    engine: Engine, database_url: str
) -> None:
    app_id = paid_application(engine)
    retry = f"{app_id}-r1"
    mirror = Mirror(database_url)
    t0 = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)

    def snap(name: str, phase: str, attempt: int, at: datetime) -> Snapshot:
        return Snapshot(app_id, phase, phase, None, attempt, at, name=name)

    try:
        # An admin's retry: the application names the new PermitRequest, its permit fields clear.
        with Session(engine) as session, session.begin():
            app = session.get(Application, app_id)
            assert app is not None
            app.permit_request = retry
            app.permit_retries = 1
        assert mirror.record(snap(retry, "Running", 1, t0 + timedelta(seconds=10)))
        # The old, failed PermitRequest (its events replayed, even a newer-looking one).
        assert mirror.record(snap(str(app_id), "Failed", 2, t0 + timedelta(seconds=20)))
        row = application(engine, str(app_id))
        assert row.permit_phase == "Running" and row.status == "paid"
        assert row.permit_attempts == 1
        assert mirror.record(snap(retry, "Succeeded", 1, t0 + timedelta(seconds=30)))
        row = application(engine, str(app_id))
        assert row.permit_phase == "Succeeded" and row.status == "permit_ready"
        with engine.connect() as conn:
            names = conn.execute(
                select(PermitHistory.phase, PermitHistory.permit_request).where(
                    PermitHistory.application_id == app_id
                )
            ).all()
        assert sorted(names) == sorted(
            [("Running", retry), ("Failed", str(app_id)), ("Succeeded", retry)]
        )
    finally:
        mirror.close()
