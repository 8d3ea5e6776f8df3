"""PortalSimulator: the portal on a loopback port, for tests, benchmarks and the demo."""

from __future__ import annotations

from aiohttp import web

from .config import PortalConfig, PortalSettings
from .routes import Portal


class PortalSimulator:
    """A stand-in for the state's permit portal that a real browser drives.

    >>> sim = PortalSimulator(PortalConfig(processing_seconds=0.5))
    >>> await sim.start()             # port 0 picks a free port
    >>> sim.url                       # 'http://127.0.0.1:PORT'
    >>> sim.config.maintenance = True # same as PUT /__control/config
    """

    def __init__(
        self, config: PortalConfig | None = None, users: dict[str, str] | None = None
    ) -> None:
        settings = PortalSettings() if config is None or users is None else None
        if config is None:
            assert settings is not None
            config = settings.config()
        if users is None:
            assert settings is not None
            users = settings.accounts()
        self.portal = Portal(config, users)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def config(self) -> PortalConfig:
        return self.portal.config

    @config.setter
    def config(self, value: PortalConfig) -> None:
        self.portal.update_config(value)

    def submissions(self, referencia: str) -> int:
        """How many times this reference was submitted (confirmed)."""
        return self.portal.store.count(referencia)

    def reset(self) -> None:
        self.portal.reset()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # aiohttp's access log would print query strings; the middleware logs safely instead.
        self._runner = web.AppRunner(self.portal.app(), shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
