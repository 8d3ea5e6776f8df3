"""`python -m permisos_operator`: the operator process."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import uuid

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from permisos.kube import Kube
from permisos.logs import configure as configure_logs
from permisos_operator.context import Context
from permisos_operator.handlers import CONNECTIONS, watch_peering
from permisos_operator.kube import Writer
from permisos_operator.leadership import Leadership
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
        # Kopf logs every handler call; the operator logs what matters (the transitions).
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # The peer's name in Kopf's peering object: which pod, and which start of it.
    identity = f"{socket.gethostname()}/{uuid.uuid4().hex[:8]}"
    metrics = OperatorMetrics()
    ctx = Context(
        writer=Writer(await Kube.from_environment(connections=CONNECTIONS)),
        settings=settings,
        metrics=metrics,
        leadership=Leadership(
            identity, settings.priority, settings.peering_lifetime, settings.standalone
        ),
    )
    metrics.registry.register(
        StateCollector(
            entries=lambda: ctx.known.all_entries() if ctx.indexes else iter(()),
            pools=lambda: ctx.snapshots,
            leading=lambda: ctx.leadership.leading,
        )
    )
    if not settings.standalone:
        watch_peering(not settings.namespaces, settings.peering_name)
    metrics_runner = await serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
    log.info("metrics on %s:%d", settings.metrics_host, settings.metrics_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=settings.standalone,
            priority=settings.priority,
            identity=identity,  # type: ignore[arg-type]  # Kopf's NewType of str
            # Naming a peering makes it mandatory in Kopf, which would pause a standalone operator.
            peering_name=None if settings.standalone else settings.peering_name,
            liveness_endpoint=settings.liveness_endpoint or None,
            memo=kopf.Memo(context=ctx),
            stop_flag=stop,
        )
    finally:
        await ctx.writer.close()
        await metrics_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
