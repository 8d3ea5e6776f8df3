"""The kubelet's log endpoint, which kube-apiserver calls for `kubectl logs`:
`GET /containerLogs/{namespace}/{pod}/{container}` with tailLines, limitBytes, follow and
previous. HTTPS with the node's serving certificate; only clients with a certificate of the
cluster's CA (the apiserver's kubelet client) get in. Each start of a container has its own
log file (`<logs>/<ns>_<pod>_<uid>/<container>/<restart>.log`), so `previous` is the one before.
Lines carry no timestamps of their own, so `timestamps=true` is refused."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from permisos.kube import JSON

FOLLOW_POLL_SECONDS = 0.2
# (namespace, pod) -> the pod bound to this node; (namespace, pod) -> does it still run
PodLookup = Callable[[str, str], JSON | None]
Running = Callable[[str, str], bool]


def container_logs(logs_dir: Path, pod: JSON, container: str) -> list[Path]:
    """The container's log files, oldest start first."""
    meta = pod["metadata"]
    folder = logs_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / container
    files = [p for p in folder.glob("*.log") if p.stem.isdigit()]
    return sorted(files, key=lambda p: int(p.stem))


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class LogServer:
    def __init__(self, logs_dir: Path, find_pod: PodLookup, is_running: Running) -> None:
        self.logs_dir = logs_dir
        self.find_pod = find_pod
        self.is_running = is_running
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int, cert: Path, key: Path, client_ca: Path) -> int:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
        context.load_cert_chain(str(cert), str(key))
        context.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=context)
        await site.start()
        server = site._server  # aiohttp does not expose the bound port otherwise
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        name = request.match_info["pod"]
        container = request.match_info["container"]
        query = request.query
        pod = self.find_pod(namespace, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found on this node\n')
        if query.get("timestamps") == "true":
            raise web.HTTPBadRequest(text="this node agent records no timestamps with log lines\n")
        files = container_logs(self.logs_dir, pod, container)
        previous = query.get("previous") == "true"
        if previous:
            if len(files) < 2:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{container}" in pod "{name}" not found\n'
                )
            path = files[-2]
        elif files:
            path = files[-1]
        else:
            raise web.HTTPBadRequest(
                text=f'container "{container}" in pod "{name}" is waiting to start\n'
            )
        try:
            tail = int(query["tailLines"]) if "tailLines" in query else None
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from error
        data = path.read_bytes()
        if tail is not None:
            data = _tail(data, tail)
        if limit is not None:
            data = data[:limit]
        follow = query.get("follow") == "true" and not previous
        if not follow:
            return web.Response(body=data, content_type="text/plain")
        answer = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await answer.prepare(request)
        await answer.write(data)
        remaining = None if limit is None else limit - len(data)
        if remaining == 0:
            await answer.write_eof()
            return answer
        offset = path.stat().st_size
        while True:
            size = path.stat().st_size
            if size > offset:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(size - offset)
                offset = size
                if remaining is not None:
                    chunk = chunk[:remaining]
                    remaining -= len(chunk)
                await answer.write(chunk)
                if remaining == 0:
                    break
            elif not self.is_running(namespace, name) or container_logs(
                self.logs_dir, pod, container
            )[-1:] != [path]:
                break  # the container ended (or started again, in a new file)
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        await answer.write_eof()
        return answer
