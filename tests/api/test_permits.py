"""Permit downloads through presigned URLs (moto's S3 server over HTTP) and permit notices."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from permisos_api.db import make_engine
from permisos_api.dispatcher import DispatcherMetrics
from permisos_api.mail import Mailer
from permisos_api.models import PermitDownload
from permisos_api.notices import send_permit_notices
from permisos_api.settings import ApiSettings
from permisos_sandbox.s3 import S3Server

from .conftest import (
    APPLICATION,
    BASE_URL,
    Api,
    mail_text,
    read_mail,
    set_permit,
    sql,
    unique_email,
)

BUCKET = "permisos-permits-test"
PDF = b"%PDF-1.7\n" + b"permiso de prueba " * 200 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def subject(msg: Message) -> str:
    return str(make_header(decode_header(msg["Subject"])))


def mark(settings: ApiSettings, application_id: str, status: str, **permit: Any) -> None:
    """What the API's mirror writes: the application's status and its current permit's state."""
    sql(settings, "UPDATE applications SET status = %s WHERE id = %s", status, application_id)
    set_permit(settings, application_id, **permit)


async def new_application(user: Any, **overrides: Any) -> str:
    r = await user.client.post(
        "/v1/applications", json={**APPLICATION, **overrides}, headers=user.bearer()
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def issue(settings: ApiSettings, s3: S3Server, application_id: str) -> dict[str, Any]:
    key = f"permits/{application_id}/permit-F-123.pdf"
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=PDF)
    artifact = {
        "kind": "permit",
        "key": key,
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "bytes": len(PDF),
    }
    mark(
        settings,
        application_id,
        status="permit_ready",
        phase="Succeeded",
        folio="F-123",
        artifacts=[artifact],
    )
    return artifact


async def test_owner_downloads_the_permit_through_a_presigned_url(
    api: Api, s3: S3Server, make_user: Callable[..., Any]
) -> None:
    api.app(s3_bucket=BUCKET, s3_endpoint_url=s3.endpoint_url, permit_url_ttl_seconds=60)
    owner, other, admin = await make_user(), await make_user(), await make_user("admin")
    application_id = await new_application(owner)
    path = f"/v1/applications/{application_id}/permits"

    r = await owner.client.get(path, headers=owner.bearer())
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/invalid-state")
    r = await owner.client.get(path + "/permit", headers=owner.bearer())
    assert r.status_code == 409, r.text

    artifact = issue(api.settings, s3, application_id)

    r = await owner.client.get(path, headers=owner.bearer())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["folio"] == "F-123"
    assert body["items"] == [
        {
            "kind": "permit",
            "bytes": artifact["bytes"],
            "sha256": artifact["sha256"],
            "url": f"{BASE_URL}{path}/permit",
        }
    ]

    r = await owner.client.get(path + "/permit", headers=owner.bearer())
    assert r.status_code == 307, r.text
    assert r.headers["cache-control"] == "no-store"
    url = r.headers["location"]
    assert (url.startswith(s3.endpoint_url) and "Expires=60" in url) or "X-Amz-Expires=60" in url
    async with httpx.AsyncClient() as plain:
        pdf = await plain.get(url)
    assert pdf.status_code == 200
    assert pdf.content == PDF
    assert hashlib.sha256(pdf.content).hexdigest() == artifact["sha256"]

    # An admin may download too; another client cannot even tell the application exists.
    r = await admin.client.get(path + "/permit", headers=admin.bearer())
    assert r.status_code == 307, r.text
    for suffix in ("", "/permit"):
        r = await other.client.get(path + suffix, headers=other.bearer())
        assert r.status_code == 404, r.text
    r = await owner.client.get(path + "/placard", headers=owner.bearer())
    assert r.status_code == 404, r.text
    r = await owner.client.get(path + "/nonsense", headers=owner.bearer())
    assert r.status_code == 422, r.text
    r = await api.client().get(path + "/permit")
    assert r.status_code == 401, r.text

    engine = make_engine(api.settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(PermitDownload.user_id, PermitDownload.kind).where(
                    PermitDownload.application_id == uuid.UUID(application_id)
                )
            ).all()
    finally:
        engine.dispose()
    assert sorted((str(u), k) for u, k in rows) == sorted(
        [(owner.id, "permit"), (admin.id, "permit")]
    )


async def test_permit_notices_go_once(
    api: Api, settings: ApiSettings, outbox: Path, make_user: Callable[..., Any]
) -> None:
    owner = await make_user()
    ready_to, failed_to = unique_email("ready"), unique_email("failed")
    ready = await new_application(owner, email=ready_to)
    failed = await new_application(owner, email=failed_to)
    mark(settings, ready, status="permit_ready", phase="Succeeded", folio="F-9")
    mark(
        settings,
        failed,
        status="permit_failed",
        phase="Failed",
        reason="PortalRejected",
        message="Las placas no corresponden al vehículo",
    )

    engine = make_engine(settings)
    mailer = Mailer(settings)
    registry = CollectorRegistry()
    permits = DispatcherMetrics(registry).permits
    sent: list[int] = []

    def one_pass() -> None:
        sent.append(send_permit_notices(engine, settings, mailer, None, permits))

    try:
        # Two replicas at once, then a later pass: still one notice each.
        threads = [threading.Thread(target=one_pass) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        one_pass()
    finally:
        engine.dispose()
    # Each permit is counted once, by outcome (other tests' finished permits may be told too).
    issued = registry.get_sample_value("permisos_permits_total", {"outcome": "issued"}) or 0
    failed = registry.get_sample_value("permisos_permits_total", {"outcome": "failed"}) or 0
    assert issued >= 1 and failed >= 1
    assert issued + failed == sum(sent)

    (ready_mail,) = read_mail(outbox, ready_to)
    assert subject(ready_mail) == "Tu permiso está listo — Permisos Digitales"
    # The link opens the application's page, where the documents are.
    page = f"{BASE_URL}/solicitudes/{ready}"
    assert page in mail_text(ready_mail) and f'href="{page}"' in mail_text(ready_mail, "html")

    (failed_mail,) = read_mail(outbox, failed_to)
    assert subject(failed_mail) == "No fue posible obtener tu permiso — Permisos Digitales"
    for text in (mail_text(failed_mail), mail_text(failed_mail, "html")):
        assert "Las placas no corresponden al vehículo" in text
        assert "reembolso" in text


async def test_readiness_reports_object_storage(api: Api, s3: S3Server) -> None:
    s3.client().create_bucket(Bucket="permisos-ready")
    ready = api.client(
        api.app(readyz_s3=True, s3_bucket="permisos-ready", s3_endpoint_url=s3.endpoint_url)
    )
    r = await ready.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["storage"]["status"] == "ok"

    missing = api.client(
        api.app(readyz_s3=True, s3_bucket="no-such-bucket", s3_endpoint_url=s3.endpoint_url)
    )
    r = await missing.get("/readyz")
    assert r.status_code == 200  # reported, not fatal: only downloads need storage
    assert r.json()["checks"]["storage"]["status"] == "failed"
