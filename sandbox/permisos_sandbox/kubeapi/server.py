"""KubeApiServer: the emulator's public face, an aiohttp app on loopback."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from .api import Api
from .crds import kopf_crds, load_crd_files
from .routes import AuditRecord, Routes
from .store import DEFAULT_HISTORY

CONTEXT = "permisos-local"


class KubeApiServer:
    """A stand-in for kube-apiserver speaking the real HTTP API.

    >>> server = KubeApiServer(crd_paths=[Path("crds")])
    >>> await server.start()          # port 0 picks a free port
    >>> server.url                    # 'http://127.0.0.1:PORT'
    """

    def __init__(
        self,
        crd_paths: Iterable[Path] = (),
        history_limit: int = DEFAULT_HISTORY,
        bookmark_interval: float = 5.0,
        audit: bool = False,
    ) -> None:
        self.crd_paths = [Path(p) for p in crd_paths]
        self.api = Api(history_limit=history_limit)
        # With `audit=True`, each resource request is recorded here (who, verb, resource), so a
        # test can compare what a client really calls with the RBAC rules it is granted.
        self.audit: list[AuditRecord] | None = [] if audit else None
        self.routes = Routes(self.api, bookmark_interval, self.audit)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api.bootstrap(kopf_crds() + load_crd_files(self.crd_paths))
        self.api.start_gc()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.routes.handle)
        # Watches end on their own when stopping, so a short grace period is enough.
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"

    async def stop(self) -> None:
        self.routes.closing.set()
        self.api.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.api.stop_gc()

    def kubeconfig(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT, "user": {}}],
            "contexts": [
                {
                    "name": CONTEXT,
                    "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"},
                }
            ],
            "current-context": CONTEXT,
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path | str) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return target
