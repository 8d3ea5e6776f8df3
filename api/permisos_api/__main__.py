"""`python -m permisos_api`: serve the API with uvicorn on the configured host and port."""

from __future__ import annotations

import gc

import uvicorn

from permisos.logs import configure as configure_logging

from .app import create_app
from .settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    # What start-up built (modules, the app, its schemas) lives as long as the process: freezing
    # it spares every collection of the oldest generation from walking it again.
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        access_log=False,  # the app logs each request itself, by route template
        log_config=None,  # keep the JSON handler configured above
        server_header=False,
    )


if __name__ == "__main__":
    main()
