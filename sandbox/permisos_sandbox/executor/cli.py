"""`python -m permisos_sandbox.executor`: run the local Job executor until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from permisos.logs import configure
from permisos_sandbox.node.images import DEFAULT_IMAGES, parse_image_flag

from .executor import JobExecutor
from .settings import ExecutorSettings

log = logging.getLogger("permisos.executor")


def parse_args(settings: ExecutorSettings, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m permisos_sandbox.executor", description=__doc__
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=settings.kubeconfig,
        required=settings.kubeconfig is None,
        help="kubeconfig of the API server whose Jobs to run",
    )
    parser.add_argument(
        "--namespace", default=settings.namespace, help="only this namespace (default: all)"
    )
    parser.add_argument(
        "--max-pods",
        type=int,
        default=settings.max_pods,
        help="pods running at once (default: the number of CPUs)",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=ARGV",
        help="the command an image stands for, e.g. "
        "'permisos/browser-runner=python -m permisos_runner' (repeatable; adds to the defaults)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of every container process (repeatable)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=settings.workdir,
        help="pod files and container logs (default: a temporary directory, removed on exit)",
    )
    parser.add_argument(
        "--backoff-seconds",
        type=float,
        default=settings.backoff_seconds,
        help="first delay before a failed Job pod is replaced (doubles each time)",
    )
    args = parser.parse_args(argv)
    try:
        args.images = {**DEFAULT_IMAGES, **dict(parse_image_flag(i) for i in args.image)}
    except ValueError as error:
        parser.error(str(error))
    args.extra_env = dict(settings.extra_env)
    for pair in args.env:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            parser.error(f"expected NAME=VALUE, got {pair!r}")
        args.extra_env[name] = value
    if not args.kubeconfig.is_file():
        parser.error(f"no kubeconfig at {args.kubeconfig}")
    if args.max_pods is not None and args.max_pods < 1:
        parser.error("--max-pods must be at least 1")
    return args


async def run(args: argparse.Namespace) -> None:
    executor = JobExecutor(
        args.kubeconfig,
        namespace=args.namespace,
        max_pods=args.max_pods,
        images=args.images,
        workdir=args.workdir,
        extra_env=args.extra_env,
        backoff_seconds=args.backoff_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await executor.start()
    except Exception as error:
        log.error("cannot start: %s", error or type(error).__name__)
        raise SystemExit(1) from None
    try:
        print(f"executor running Jobs of {args.kubeconfig}", flush=True)
        await stop.wait()
        log.info("stopping: killing running pods")
    finally:
        await executor.stop()


def main(argv: list[str] | None = None) -> None:
    settings = ExecutorSettings()
    configure(settings.log_level, settings.log_format)
    asyncio.run(run(parse_args(settings, argv)))
