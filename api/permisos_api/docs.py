"""The interactive API documentation at /docs, served entirely by the API: Swagger UI's files
come from the `swagger-ui-bundle-v2` package and the page has no inline script, so it works
with no internet and under the API's Content-Security-Policy. ReDoc (FastAPI's /redoc loads from
a CDN) is not offered.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

from .problems import ProblemError

ASSETS = "/docs/assets"
# Only what the page loads: the bundle, its stylesheet and the favicon (not the source maps).
SERVED = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/init.js"></script>
</body>
</html>
"""

# Starts Swagger UI: a file of its own, since the Content-Security-Policy refuses inline script.
INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
"""
# The files change only with the package's version: browsers may keep them a day.
CACHE = {"Cache-Control": "public, max-age=86400"}


def install_docs(app: FastAPI) -> None:
    """Call with FastAPI(docs_url=None, redoc_url=None)."""
    page = PAGE.format(title=f"{app.title}: API docs", assets=ASSETS)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(f"{ASSETS}/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(INIT, media_type="text/javascript", headers=CACHE)

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in SERVED:
            raise ProblemError("not-found", "No such file.")
        return FileResponse(Path(swagger_ui_path) / name, headers=CACHE)
