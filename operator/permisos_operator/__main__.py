"""`python -m permisos_operator`: the operator process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import kopf
from aiohttp import web
from lightkube import AsyncClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import permisos_operator.handlers  # noqa: F401  (registers the Kopf handlers)
from permisos.logs import configure as configure_logs
from permisos_operator.controller import Controller
from permisos_operator.kube import Kube
from permisos_operator.metrics import OperatorMetrics, StateCollector
from permisos_operator.settings import OperatorSettings

log = logging.getLogger("permisos.operator")


async def serve_metrics(metrics: OperatorMetrics, host: str, port: int) -> web.AppRunner:
    async def handle(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def main() -> None:
    settings = OperatorSettings()
    configure_logs(settings.log_level, settings.log_format)
    if settings.log_level != "DEBUG":
        # Kopf logs every handler call; the controller logs what matters (the transitions).
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics = OperatorMetrics()
    controller = Controller(Kube(AsyncClient(field_manager="permisos-operator")), settings, metrics)
    metrics.registry.register(
        StateCollector(
            controller.phase_tally,
            lambda: controller.snapshots,
            requests=lambda: controller.cache.requests.values(),
            leading=lambda: controller.running,
        )
    )
    metrics_runner = await serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
    log.info("metrics on %s:%d", settings.metrics_host, settings.metrics_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    memo = kopf.Memo(controller=controller, settings=settings)
    standalone_task = None
    if settings.standalone:
        # No peers to defer to: the controller runs for the whole life of the process.
        standalone_task = asyncio.create_task(controller.run_forever())
    try:
        await kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=settings.standalone,
            priority=settings.priority,
            # Naming a peering makes it mandatory in Kopf, which would pause a standalone operator.
            peering_name=None if settings.standalone else settings.peering_name,
            liveness_endpoint=settings.liveness_endpoint or None,
            memo=memo,
            stop_flag=stop,
        )
    finally:
        if standalone_task is not None:
            standalone_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await standalone_task
        await controller.kube.close()
        await metrics_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
