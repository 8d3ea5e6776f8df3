"""`python -m permisos_sandbox.kubeapi`: serve the emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from permisos_sandbox.serving import serve_until_signalled

from .server import KubeApiServer
from .store import DEFAULT_HISTORY


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m permisos_sandbox.kubeapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--crds", type=Path, action="append", default=[], help="CRD file or directory"
    )
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument("--history-limit", type=int, default=DEFAULT_HISTORY)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = KubeApiServer(crd_paths=args.crds, history_limit=args.history_limit)
    await server.start(host=args.host, port=args.port)
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig)
    await serve_until_signalled("kubeapi", server.url, server.stop)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))
