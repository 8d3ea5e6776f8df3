"""`python -m permisos_sandbox.portal`: serve the portal simulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from permisos.logs import configure
from permisos_sandbox.serving import serve_until_signalled

from .config import PortalSettings
from .server import PortalSimulator


def parse_args(settings: PortalSettings, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m permisos_sandbox.portal", description=__doc__)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--processing-seconds", type=float, default=settings.processing_seconds)
    parser.add_argument("--latency-ms", type=int, default=settings.latency_ms)
    return parser.parse_args(argv)


async def serve(settings: PortalSettings, args: argparse.Namespace) -> None:
    config = settings.config()
    config.processing_seconds = args.processing_seconds
    config.latency_ms = args.latency_ms
    sim = PortalSimulator(config, settings.accounts())
    await sim.start(host=args.host, port=args.port)
    await serve_until_signalled("portal", sim.url, sim.stop)


def main(argv: list[str] | None = None) -> None:
    settings = PortalSettings()
    configure(settings.log_level)
    asyncio.run(serve(settings, parse_args(settings, argv)))


if __name__ == "__main__":
    main()
