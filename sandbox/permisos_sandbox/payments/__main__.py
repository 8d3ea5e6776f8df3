"""`python -m permisos_sandbox.payments`: serve the payments simulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from permisos.logs import configure
from permisos_sandbox.serving import serve_until_signalled

from .config import PaymentsSettings
from .server import PaymentsSimulator


def parse_args(settings: PaymentsSettings, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m permisos_sandbox.payments", description=__doc__
    )
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--api-key", default=settings.api_key)
    parser.add_argument("--publishable-key", default=settings.publishable_key)
    parser.add_argument("--webhook-url", default=settings.webhook_url)
    parser.add_argument("--webhook-secret", default=settings.webhook_secret)
    parser.add_argument("--retry-base-seconds", type=float, default=settings.retry_base_seconds)
    parser.add_argument("--max-attempts", type=int, default=settings.max_attempts)
    parser.add_argument("--public-url", default=settings.public_url)
    return parser.parse_args(argv)


async def serve(settings: PaymentsSettings, args: argparse.Namespace) -> None:
    config = settings.config()
    config.api_key = args.api_key
    config.publishable_key = args.publishable_key
    config.webhook_url = args.webhook_url or None
    config.webhook_secret = args.webhook_secret
    config.retry_base_seconds = args.retry_base_seconds
    config.max_attempts = args.max_attempts
    config.public_url = args.public_url or None
    sim = PaymentsSimulator(config)
    await sim.start(host=args.host, port=args.port)
    await serve_until_signalled("payments", sim.url, sim.stop)


def main(argv: list[str] | None = None) -> None:
    settings = PaymentsSettings()
    configure(settings.log_level)
    asyncio.run(serve(settings, parse_args(settings, argv)))


if __name__ == "__main__":
    main()
