"""`python -m permisos_sandbox.node`: the node agent, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import tempfile
from pathlib import Path

from permisos.kube import Kube
from permisos.logs import configure

from .agent import NodeAgent
from .config import NodeConfig, NodeSettings
from .images import DEFAULT_IMAGES, load_image_file, parse_image_flag

log = logging.getLogger("permisos.node")


def parse_args(settings: NodeSettings, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m permisos_sandbox.node", description=__doc__)

    def path(flag: str, default: Path | None, text: str) -> None:
        parser.add_argument(flag, type=Path, default=default, required=default is None, help=text)

    path("--kubeconfig", settings.kubeconfig, "credentials of this node (system:node:<name>)")
    path("--tls-cert", settings.tls_cert, "serving certificate of the kubelet endpoint")
    path("--tls-key", settings.tls_key, "its key")
    path("--client-ca", settings.client_ca, "CA of the apiserver's client certificate")
    parser.add_argument("--name", default=settings.name, help="the Node's name")
    parser.add_argument("--port", type=int, default=settings.port, help="kubelet port (0: any)")
    parser.add_argument("--max-pods", type=int, default=settings.max_pods)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=settings.state_dir,
        help="container logs (default: a temporary directory)",
    )
    parser.add_argument(
        "--runtime-root",
        type=Path,
        default=settings.runtime_root,
        help="memory-backed directory for pods' files (default: /dev/shm)",
    )
    parser.add_argument(
        "--images-file",
        type=Path,
        default=settings.images_file,
        help="YAML map of image to command, added to the defaults",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=ARGV",
        help="the command an image stands for (repeatable; adds to the defaults and the file)",
    )
    args = parser.parse_args(argv)
    try:
        images = {k: tuple(v) for k, v in DEFAULT_IMAGES.items()}
        if args.images_file is not None:
            images.update(load_image_file(args.images_file))
        images.update(dict(parse_image_flag(i) for i in args.image))
    except (OSError, ValueError) as error:
        parser.error(str(error))
    args.images = images
    if args.max_pods < 1:
        parser.error("--max-pods must be at least 1")
    return args


async def run(args: argparse.Namespace, settings: NodeSettings) -> None:
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="permisos-node-"))
    config = NodeConfig(
        name=args.name,
        images=args.images,
        state_dir=state,
        runtime_root=args.runtime_root,
        max_pods=args.max_pods,
        extra_env=settings.extra_env,
        pod_network=settings.pod_network,
        host_ports=tuple(settings.host_ports),
    )
    kube = await Kube.from_kubeconfig(args.kubeconfig)
    agent = NodeAgent(
        config,
        kube,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        port=args.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await agent.start()
        except Exception as error:
            log.error("cannot start: %s", error or type(error).__name__)
            raise SystemExit(1) from None
        print(f"node {config.name} ready (kubelet port {agent.logs.port})", flush=True)
        await stop.wait()
        log.info("stopping: killing running pods")
    finally:
        await agent.stop()
        await kube.close()


def main(argv: list[str] | None = None) -> None:
    settings = NodeSettings()
    configure(settings.log_level, settings.log_format)
    asyncio.run(run(parse_args(settings, argv), settings))


if __name__ == "__main__":
    main()
