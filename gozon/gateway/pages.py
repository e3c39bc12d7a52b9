"""What the gateway serves a browser besides the API: the shopper's page at `/` (from the
`client/` folder), the OpenAPI document at `/openapi.json`, and Swagger UI at `/docs`
from the assets packaged with swagger-ui-py (no CDN, so it works offline)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path, PurePath

import msgspec
from quart import Quart, Response, send_file

from gozon.config import Settings
from gozon.gateway import openapi
from gozon.web.errors import ApiError

SWAGGER_UI = Path(str(files("swagger_ui") / "static"))
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Gozon API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body>
</html>
"""


def install(app: Quart, client_dir: Path, settings: Settings) -> None:
    """Add the page's, the document's and Swagger UI's routes to the gateway's `app`."""
    page_assets = client_dir / "assets"
    assets = {"/assets/{name}": _servable(page_assets), "/docs/{name}": SWAGGER_ASSETS}
    document = msgspec.json.encode(openapi.document(assets, settings))

    @app.get("/")
    async def page() -> Response:
        index = client_dir / "index.html"
        if not index.is_file():
            raise ApiError(404, "not_found", f"The shopper's page is not installed: no {index} (GOZON_CLIENT_DIR).")
        return await _send(index)

    @app.get("/assets/<name>")
    async def page_asset(name: str) -> Response:
        return await _send_listed(page_assets, name, assets["/assets/{name}"])

    @app.get("/openapi.json")
    async def openapi_json() -> Response:
        return Response(document, content_type=openapi.JSON)

    @app.get("/docs")
    async def docs() -> Response:
        return Response(DOCS_PAGE, content_type="text/html; charset=utf-8")

    @app.get("/docs/<name>")
    async def docs_asset(name: str) -> Response:
        return await _send_listed(SWAGGER_UI, name, SWAGGER_ASSETS)


def _servable(folder: Path) -> tuple[str, ...]:
    """The files of `folder` of a type the gateway serves (the document lists them)."""
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in openapi.MEDIA_TYPES))


async def _send_listed(folder: Path, name: str, listed: tuple[str, ...]) -> Response:
    # Only listed names: nothing else of the folder, and no path tricks, can be asked for.
    if name not in listed:
        raise ApiError(404, "not_found", f"There is no file {name!r} here.")
    return await _send(folder / name)


async def _send(path: Path) -> Response:
    response = await send_file(path, mimetype=openapi.MEDIA_TYPES[PurePath(path).suffix], conditional=True)
    response.headers["Cache-Control"] = "no-cache"  # revalidate (ETag): a new version is seen at once
    return response
