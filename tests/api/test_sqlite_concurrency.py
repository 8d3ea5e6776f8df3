"""The demo's load on one SQLite file: ten applicants at once, end to end.

Writers on the same file at the same time: the API's request threads (registrations, logins,
payments, Stripe's webhooks, polls), its outbox dispatcher and notices, the operator as its own
process mirroring every phase, and a second process writing as the mirror does, all the time.
Every applicant must get their permit and exactly one notice, with no error anywhere: without
WAL, the busy timeout and BEGIN IMMEDIATE (`permisos.database.configure_sqlite`, and the mirror's
copy), SQLite answers some of these writes with "database is locked".
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import AsyncClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from permisos_api.migrate import upgrade
from permisos_api.models import PermitHistory
from permisos_api.settings import ApiSettings
from tests.api.conftest import APPLICATION, paid_applications, read_mail
from tests.api.payments_support import Pay, eventually
from tests.cluster import Kubelet, OperatorProcess, runner_pool

APPLICANTS = 10

# A process that writes as the operator's mirror does (permisos_operator.mirror.Mirror), every
# few milliseconds until told to stop; prints how many transitions it recorded.
MIRROR_WRITER = """
import sys, time, uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from permisos_operator.mirror import Mirror, Snapshot

url, stop, *ids = sys.argv[1:]
mirror = Mirror(url)
t0, n = datetime.now(UTC), 0
while not Path(stop).exists():
    app = uuid.UUID(ids[n % len(ids)])
    phase = ("Queued", "Running")[n % 2]
    assert mirror.record(Snapshot(app, phase, phase, None, n, t0 + timedelta(milliseconds=n)))
    n += 1
    time.sleep(0.003)
mirror.close()
print(n)
"""


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+pysqlite:///{tmp_path_factory.mktemp('sqlite') / 'permisos.db'}"
    upgrade(url)
    return url


@pytest.fixture
def settings(settings: ApiSettings) -> ApiSettings:
    # The dispatcher (outbox and notices) passes often, as in a lively demo.
    return settings.model_copy(update={"dispatcher_interval_seconds": 0.2})


async def play_kubelet(kubelet: Kubelet) -> None:
    """Every runner Job the operator creates succeeds."""
    done: set[str] = set()
    while True:
        for job in await kubelet.jobs():
            name = job["metadata"]["name"]
            if name not in done:
                done.add(name)
                await kubelet.succeed(name, folio=f"F-{len(done):04d}")
        await asyncio.sleep(0.1)


def notices(outbox: Path) -> list[str]:
    return [
        str(make_header(decode_header(m["Subject"])))
        for m in read_mail(outbox, APPLICATION["email"])
    ]


async def applicant(pay: Pay, user: Any, n: int) -> dict[str, Any]:
    """One applicant: applies, pays (card or OXXO), waits for the permit, lists its PDFs."""
    app_id = await pay.new_application(user)
    if n % 2:
        r = await pay.pay(user, app_id, method="oxxo")
        assert r.status_code == 201, r.text
        pay.sim.pay_oxxo(r.json()["intent_id"])
    else:
        r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
        assert r.status_code == 201, r.text
    deadline = time.monotonic() + 60
    while (app := await pay.application(user, app_id))["status"] != "permit_ready":
        assert app["status"] in ("payment_pending", "paid"), app
        assert time.monotonic() < deadline, f"no permit in time: {app}"
        await asyncio.sleep(0.1)
    r = await user.client.get(f"/v1/applications/{app_id}/permits", headers=user.bearer())
    assert r.status_code == 200, r.text
    return {**app, "folio": r.json()["folio"]}


async def test_ten_applicants_at_once_on_one_sqlite_file(
    pay: Pay,
    make_user: Callable[..., Any],
    outbox: Path,
    engine: Engine,
    kubeconfig: Path,
    kube: AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    url = pay.api.settings.database_url
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    await kube.create(runner_pool(replicas=APPLICANTS))
    operator = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        extra_env={
            "PERMISOS_OPERATOR_DATABASE_URL": url,
            "PERMISOS_OPERATOR_MIRROR_RETRY_SECONDS": "0.5",
        },
    )
    stop = tmp_path / "stop-writer"
    background = [str(app_id) for app_id in paid_applications(engine, 5)]  # someone else's
    writer = subprocess.Popen(
        [sys.executable, "-c", MIRROR_WRITER, url, str(stop), *background],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Every answer the applicants get, to find any 5xx afterwards.
    answers: list[int] = []

    async def record(response: httpx.Response) -> None:
        answers.append(response.status_code)

    dispatcher = asyncio.create_task(pay.app.state.dispatcher.run_forever())
    kubelet = asyncio.create_task(play_kubelet(Kubelet(kube)))
    try:
        users = await asyncio.gather(*(make_user() for _ in range(APPLICANTS)))
        for user in users:
            user.client.event_hooks["response"].append(record)
        apps = await asyncio.gather(*(applicant(pay, u, n) for n, u in enumerate(users)))
        await pay.sim.wait_for_deliveries()

        async def notified() -> bool:  # the dispatcher's next passes mail the last permits
            return notices(outbox).count("Su permiso está listo") >= APPLICANTS

        await eventually(notified, timeout=20)
        metrics = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
    finally:
        dispatcher.cancel()
        kubelet.cancel()
        await asyncio.gather(dispatcher, kubelet, return_exceptions=True)
        stop.touch()
        written, errors = writer.communicate(timeout=60)
        operator.stop()

    assert writer.returncode == 0, errors
    assert int(written) >= 10  # it wrote all along (how often depends on the machine)
    assert [a["status"] for a in apps] == ["permit_ready"] * APPLICANTS
    assert len({a["folio"] for a in apps}) == APPLICANTS
    assert answers and all(code < 500 for code in answers), sorted(set(answers))
    # Stripe's webhooks were all taken at the first try, none answered with an error.
    deliveries = pay.sim.deliveries()
    assert deliveries and all(d["status"] == 200 for d in deliveries), deliveries
    # The dispatcher never failed a pass or a delivery; the operator never failed a mirror write.
    assert "permisos_outbox_errors_total 0.0" in (await pay.metrics())
    assert 'permisos_operator_api_errors_total{operation="mirror"} 0.0' in metrics
    assert "database is locked" not in operator.logs()
    # Each permit's whole history, each transition once; one notice per applicant.
    with Session(engine) as db:
        for app in apps:
            phases = db.scalars(
                select(PermitHistory.phase)
                .where(PermitHistory.application_id == uuid.UUID(app["id"]))
                .order_by(PermitHistory.transitioned_at, PermitHistory.id)
            ).all()
            assert phases == ["Queued", "Running", "Succeeded"], phases
        assert db.scalar(select(func.count()).select_from(PermitHistory)) >= int(written)
    assert notices(outbox).count("Su permiso está listo") == APPLICANTS
    # Nothing in the API's logs went wrong either (a failed pass or notice is only logged).
    troubles = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert troubles == []
