"""The outbox dispatcher against real PostgreSQL and the real kube-apiserver, as the API's
ServiceAccount with the API's Role (`permisos_api.rbac`, what the chart grants), through a
TCP proxy a test can cut to play an outage (the `cluster` fixture, conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from permisos_api.db import utcnow
from permisos_api.dispatcher import Dispatcher, DispatcherMetrics
from permisos_api.kube import FINALIZER
from permisos_api.models import CURRENT_PERMIT, Application, Outbox, Permit
from permisos_api.permit_rows import ensure_permit
from permisos_api.settings import ApiSettings
from tests.cluster import eventually
from tests.namespaces import Namespace, permit_request

from .conftest import PERSONAL, Cluster, paid_application


@pytest.fixture
def settings(settings: ApiSettings, cluster: Cluster) -> ApiSettings:
    """The API's settings, in the test's namespace."""
    return settings.model_copy(update={"kubernetes_namespace": cluster.namespace})


def dispatcher_settings(settings: ApiSettings) -> ApiSettings:
    return settings.model_copy(
        update={
            "dispatcher_backoff_seconds": 1.0,
            "dispatcher_max_backoff_seconds": 4.0,
            # The setting's default (5 s): on the real apiserver the first write of a new
            # CRD's resource took 2 s (its storage warming up), more than 2 s allowed.
            "permit_pool": "default",
        }
    )


def outbox_row(engine: Engine, application_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(Outbox).where(Outbox.application_id == application_id)).one()


def permit_request_of(engine: Engine, application_id: uuid.UUID) -> str | None:
    """The PermitRequest of the application's current permit, once the permit has its row."""
    with engine.connect() as conn:
        value = conn.execute(
            select(Permit.request_name)
            .join(Application, CURRENT_PERMIT)
            .where(Application.id == application_id)
        ).scalar_one_or_none()
    return str(value) if value is not None else None


async def permit_requests(kube: Namespace, application_id: uuid.UUID) -> list[dict[str, Any]]:
    found = await kube.objects("permitrequests")
    return [p for p in found if p["spec"]["applicationId"] == str(application_id)]


async def secret_of(kube: Namespace, request: str) -> dict[str, Any]:
    secret = await kube.get("secrets", f"{request}-applicant")
    assert secret is not None, f"no Secret {request}-applicant"
    return secret


def assert_no_personal_data(obj: Any) -> None:
    text = json.dumps(obj, ensure_ascii=False).lower()
    for value in PERSONAL.values():
        assert value.lower() not in text, "personal data leaked"


def new_dispatcher(settings: ApiSettings, engine: Engine) -> Dispatcher:
    return Dispatcher(dispatcher_settings(settings), engine, DispatcherMetrics(CollectorRegistry()))


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def applicant_secret(
    name: str, labels: dict[str, str] | None, data: dict[str, str], owner: dict[str, Any] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"{name}-applicant", "labels": labels or {}}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": data,
    }


def owner_of(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": request["apiVersion"],
        "kind": "PermitRequest",
        "name": request["metadata"]["name"],
        "uid": request["metadata"]["uid"],
    }


async def test_dispatch_creates_one_permit_request_and_its_secret(
    settings: ApiSettings, engine: Engine, cluster: Cluster, kube: Namespace
) -> None:
    app_id = paid_application(engine, outbox=True)
    registry = CollectorRegistry()
    dispatcher = Dispatcher(dispatcher_settings(settings), engine, DispatcherMetrics(registry))
    try:
        assert await dispatcher.run_once() >= 1
    finally:
        await dispatcher.close()

    requests = await permit_requests(kube, app_id)
    assert len(requests) == 1
    request = requests[0]
    assert request["metadata"]["name"] == str(app_id)
    spec = request["spec"]
    assert spec["applicationId"] == str(app_id)
    assert spec["secretName"] == f"{app_id}-applicant"
    assert spec["pool"] == "default" and spec["priority"] == 0
    assert spec["paidAt"].endswith("Z")
    assert spec["vehicle"] == {
        "plates": "JKL4821",
        "make": "nissan",
        "line": "versa",
        "modelYear": 2022,
        "serviceType": "particular",
    }
    assert request["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "permisos-api"
    # Born with the mirror's finalizer: its outcome is recorded before it can go.
    assert request["metadata"]["finalizers"] == [FINALIZER]
    assert_no_personal_data(request)

    secret = await secret_of(kube, app_id)
    assert secret["type"] == "Opaque"
    labels = secret["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/managed-by": "permisos-api",
        "permisosdigitales.mx/application": str(app_id),
    }
    assert_no_personal_data(secret["metadata"])
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == PERSONAL
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner["kind"] == "PermitRequest" and owner["name"] == str(app_id)
    assert owner["uid"] == request["metadata"]["uid"]
    assert owner["controller"] is False and owner["blockOwnerDeletion"] is True

    row = outbox_row(engine, app_id)
    assert row.dispatched_at is not None and row.last_error is None
    assert permit_request_of(engine, app_id) == str(app_id)
    assert (registry.get_sample_value("permisos_outbox_dispatched_total") or 0) >= 1
    assert registry.get_sample_value("permisos_outbox_pending") is not None


async def test_dispatching_twice_and_concurrently_makes_one_permit_request(
    settings: ApiSettings, engine: Engine, cluster: Cluster, kube: Namespace
) -> None:
    app_id = paid_application(engine, outbox=True)
    first, second = new_dispatcher(settings, engine), new_dispatcher(settings, engine)
    try:
        await asyncio.gather(first.run_once(), second.run_once())
        uid = (await permit_requests(kube, app_id))[0]["metadata"]["uid"]
        # The row delivered again (a replica that crashed before recording it): 409 is success.
        for _ in range(2):
            with engine.begin() as conn:
                conn.execute(
                    update(Outbox)
                    .where(Outbox.application_id == app_id)
                    .values(dispatched_at=None, next_attempt_at=utcnow())
                )
            await asyncio.gather(first.run_once(), second.run_once())
    finally:
        await first.close()
        await second.close()

    requests = await permit_requests(kube, app_id)
    assert len(requests) == 1 and requests[0]["metadata"]["uid"] == uid
    secret = await secret_of(kube, app_id)
    assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [uid]
    assert decoded(secret) == PERSONAL
    row = outbox_row(engine, app_id)
    assert row.dispatched_at is not None and row.last_error is None


async def test_kubernetes_down_keeps_the_row_until_it_is_back(
    settings: ApiSettings, engine: Engine, cluster: Cluster, kube: Namespace
) -> None:
    app_id = paid_application(engine, outbox=True)
    dispatcher = new_dispatcher(settings, engine)
    try:
        await cluster.stop()
        before = utcnow()
        await dispatcher.run_once()
        row = outbox_row(engine, app_id)
        assert row.dispatched_at is None
        assert row.attempts == 1 and row.last_error
        assert row.next_attempt_at > before
        for value in PERSONAL.values():
            assert value.lower() not in row.last_error.lower()
        assert permit_request_of(engine, app_id) is None

        # Still down at the next attempt: the backoff grows.
        await dispatcher.run_once(now=row.next_attempt_at + timedelta(seconds=1))
        row2 = outbox_row(engine, app_id)
        assert row2.dispatched_at is None and row2.attempts == 2
        assert row2.next_attempt_at > row.next_attempt_at

        # Not due yet: nothing is attempted.
        await cluster.restart()
        await dispatcher.run_once(now=utcnow() - timedelta(seconds=30))
        assert outbox_row(engine, app_id).attempts == 2

        await dispatcher.run_once(now=row2.next_attempt_at + timedelta(seconds=1))
    finally:
        await dispatcher.close()

    row = outbox_row(engine, app_id)
    assert row.dispatched_at is not None and row.last_error is None
    assert permit_request_of(engine, app_id) == str(app_id)
    assert len(await permit_requests(kube, app_id)) == 1
    secret = await secret_of(kube, app_id)
    assert secret["metadata"]["ownerReferences"][0]["name"] == str(app_id)


async def test_undeliverable_row_stays_pending_without_personal_data(
    settings: ApiSettings, engine: Engine, cluster: Cluster, kube: Namespace
) -> None:
    """A request that cannot be built (here, a bad pool name) is retried, never half-made."""
    app_id = paid_application(engine, outbox=True)
    custom = dispatcher_settings(settings).model_copy(update={"permit_pool": "Not_A_Pool"})
    dispatcher = Dispatcher(custom, engine, DispatcherMetrics(CollectorRegistry()))
    try:
        await dispatcher.run_once()
    finally:
        await dispatcher.close()
    row = outbox_row(engine, app_id)
    assert row.dispatched_at is None and row.attempts == 1
    assert row.last_error == "invalid application data: pool"
    assert await kube.get("permitrequests", str(app_id)) is None


async def test_readiness_reports_kubernetes_but_stays_ready_without_it(
    cluster: Cluster, api: Any
) -> None:
    """The outbox rides out a Kubernetes outage, so it must not take the API out of service."""
    client = api.client(api.app(dispatcher_enabled=True, kubernetes_timeout_seconds=2.0))
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["kubernetes"]["status"] == "ok"

    await cluster.stop()
    degraded = await client.get("/readyz")
    assert degraded.status_code == 200
    checks = degraded.json()["checks"]
    assert checks["kubernetes"]["status"] == "failed"
    assert checks["database"]["status"] == "ok"


async def test_the_dispatcher_and_the_mirror_writing_one_new_permit_do_not_deadlock(
    settings: ApiSettings, engine: Engine, cluster: Cluster, kube: Namespace
) -> None:
    """The mirror saw the new PermitRequest first: it holds the application's row and writes
    the permit's while the dispatcher records the delivery. They must queue, not deadlock
    (PostgreSQL would abort one after a second, and a batch's other rows waited for the lease)."""
    app_id = paid_application(engine, outbox=True)
    dispatcher = new_dispatcher(settings, engine)
    try:
        with engine.connect() as mirror:
            # The mirror's transaction, as `mirror.store.record` opens it.
            mirror.execute(select(Application.id).where(Application.id == app_id).with_for_update())
            delivery = asyncio.create_task(dispatcher.run_once())

            async def created() -> bool:
                return bool(await permit_requests(kube, app_id))

            await eventually(created)
            await asyncio.sleep(0.5)  # the dispatcher is recording the delivery now
            ensure_permit(mirror, engine, app_id, 0, str(app_id), utcnow())
            mirror.commit()
        assert await asyncio.wait_for(delivery, 30) == 1
    finally:
        await dispatcher.close()
    assert outbox_row(engine, app_id).dispatched_at is not None
    with Session(engine) as session:
        permits = session.scalars(select(Permit).where(Permit.application_id == app_id)).all()
    assert [(p.retry, p.request_name) for p in permits] == [(0, str(app_id))]


async def test_a_retry_row_creates_a_new_permit_request(
    settings: ApiSettings, engine: Engine, cluster: Cluster, kube: Namespace
) -> None:
    app_id = paid_application(engine, outbox=True)
    dispatcher = new_dispatcher(settings, engine)
    try:
        assert await dispatcher.run_once() >= 1
        # What POST /v1/admin/applications/{id}/retry-permit leaves behind (the name is left to
        # the dispatcher here).
        with Session(engine) as session, session.begin():
            session.execute(
                update(Application)
                .where(Application.id == app_id)
                .values(status="paid", permit_retries=1)
            )
            session.add(
                Outbox(application_id=app_id, kind="permit_request_r1", next_attempt_at=utcnow())
            )
        assert await dispatcher.run_once() >= 1
    finally:
        await dispatcher.close()

    retry = f"{app_id}-r1"
    requests = {p["metadata"]["name"]: p for p in await permit_requests(kube, app_id)}
    assert sorted(requests) == sorted([str(app_id), retry])
    spec = requests[retry]["spec"]
    assert spec["applicationId"] == str(app_id) and spec["secretName"] == f"{retry}-applicant"
    secret = await secret_of(kube, retry)
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner["name"] == retry and owner["uid"] == requests[retry]["metadata"]["uid"]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == PERSONAL
    assert permit_request_of(engine, app_id) == retry
    with engine.connect() as conn:
        kinds = conn.execute(
            select(Outbox.kind, Outbox.dispatched_at.is_not(None)).where(
                Outbox.application_id == app_id
            )
        ).all()
    assert sorted(kinds) == [("permit_request", True), ("permit_request_r1", True)]


def ours(app_id: uuid.UUID) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "permisos-api",
        "permisosdigitales.mx/application": str(app_id),
    }


async def test_an_existing_applicant_secret_gets_the_current_data_and_one_owner_unread(
    settings: ApiSettings, engine: Engine, cluster: Cluster, kube: Namespace
) -> None:
    """The dispatcher's Secret found again (409): stale data is replaced without reading it, and
    a reference to another request is dropped, so only this request keeps the data alive."""
    app_id = paid_application(engine, outbox=True)
    another = permit_request("other-request")
    other = await kube.create("permitrequests", another)
    stale = {"first_name": "Viejo", "curp": "XXXX000000XXXXXX00", "leftover": "x"}
    await kube.create(
        "secrets", applicant_secret(str(app_id), ours(app_id), stale, owner_of(other))
    )
    dispatcher = new_dispatcher(settings, engine)
    try:
        assert await dispatcher.run_once() >= 1
        request = (await permit_requests(kube, app_id))[0]
        secret = await secret_of(kube, app_id)
        assert decoded(secret) == PERSONAL
        assert secret["metadata"]["labels"] == ours(app_id)
        (owner,) = secret["metadata"]["ownerReferences"]
        assert owner["uid"] == request["metadata"]["uid"] and owner["name"] == str(app_id)
        assert owner["controller"] is False and owner["blockOwnerDeletion"] is True

        # The applicant's data changed before the row was delivered again: the Secret follows.
        with engine.begin() as conn:
            conn.execute(update(Application).where(Application.id == app_id).values(phone="5599"))
            conn.execute(
                update(Outbox)
                .where(Outbox.application_id == app_id)
                .values(dispatched_at=None, next_attempt_at=utcnow())
            )
        assert await dispatcher.run_once() >= 1
    finally:
        await dispatcher.close()
    secret = await secret_of(kube, app_id)
    assert decoded(secret) == {**PERSONAL, "phone": "5599"}
    assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [request["metadata"]["uid"]]
    assert len(await permit_requests(kube, app_id)) == 1
    assert outbox_row(engine, app_id).last_error is None


@pytest.mark.parametrize(
    "labels",
    [None, {"app.kubernetes.io/managed-by": "someone-else"}, "another application"],
    ids=["unlabelled", "another manager", "another application"],
)
async def test_a_secret_that_is_not_the_applications_is_left_alone_and_no_request_is_made(
    settings: ApiSettings,
    engine: Engine,
    cluster: Cluster,
    kube: Namespace,
    labels: dict[str, str] | str | None,
) -> None:
    app_id = paid_application(engine, outbox=True)
    if labels == "another application":
        labels = ours(uuid.uuid4())
    assert not isinstance(labels, str)
    await kube.create(
        "secrets", applicant_secret(str(app_id), labels, {"token": "not-yours"}, None)
    )
    before = await secret_of(kube, app_id)
    dispatcher = new_dispatcher(settings, engine)
    try:
        await dispatcher.run_once()
    finally:
        await dispatcher.close()
    after = await secret_of(kube, app_id)
    assert after == before
    assert await permit_requests(kube, app_id) == []
    row = outbox_row(engine, app_id)
    assert row.dispatched_at is None and row.attempts == 1
    assert row.last_error == (
        f"Secret {app_id}-applicant exists and is not this application's "
        "(managed-by, application labels or type differ); left untouched"
    )
    assert permit_request_of(engine, app_id) is None
