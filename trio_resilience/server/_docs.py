"""The OpenAPI document and its pages, which work without internet access.

quart-schema's pages load Swagger UI and ReDoc from a CDN unless told otherwise;
here they load them from this server, which serves the files two installed
packages bundle: ``flask-openapi3-swagger`` (Swagger UI 5, the first to read
OpenAPI 3.1) and ``flask-openapi3-redoc`` (ReDoc 2). Only their static files are
used: their packages are imported just to find them (their ``__init__`` modules are
empty), and nothing of ``flask-openapi3`` itself is loaded.

With ``enable_docs``: ``/openapi.json``, Swagger UI at ``/docs``, ReDoc at
``/redocs`` and ``/redoc`` (the original server's path), and the assets under
``/docs/assets/``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import attrs
from quart import Blueprint, Response, abort, send_file
from quart_schema import Info, QuartSchema, hide

from .._version import __version__
from ._openapi import ResilienceOpenAPIProvider
from ._settings import ServerSettings
from ._state import ResilienceTestApp

ASSETS_PREFIX = "/docs/assets"


@attrs.frozen
class Asset:
    """A file of an installed package, served under `ASSETS_PREFIX`."""

    package: str
    resource: str
    mimetype: str

    def path(self) -> Path:
        found = importlib.resources.files(self.package).joinpath(self.resource)
        if not isinstance(found, Path) or not found.is_file():
            raise RuntimeError(f"{self.package} has no file {self.resource}")
        return found


ASSETS = {
    "swagger-ui-bundle.js": Asset(
        "flask_openapi3_swagger",
        "templates/swagger/js/swagger-ui-bundle.js",
        "text/javascript",
    ),
    "swagger-ui.css": Asset(
        "flask_openapi3_swagger", "templates/swagger/css/swagger-ui.css", "text/css"
    ),
    "redoc.standalone.js": Asset(
        "flask_openapi3_redoc",
        "templates/redoc/js/redoc.standalone.js",
        "text/javascript",
    ),
}
"""What the pages load, by the name in its URL."""

assets = Blueprint("docs_assets", __name__, url_prefix=ASSETS_PREFIX)


@assets.get("/<name>")
@hide
async def asset(name: str) -> Response:
    """One documentation asset; revalidated by ETag on each use."""
    found = ASSETS.get(name)
    if found is None:
        abort(404)
    return await send_file(
        found.path(), mimetype=found.mimetype, cache_timeout=0, conditional=True
    )


def init_docs(app: ResilienceTestApp, settings: ServerSettings) -> QuartSchema:
    """Set quart-schema up on ``app``: the document, and its pages if enabled."""
    docs = settings.enable_docs
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = f"{ASSETS_PREFIX}/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = f"{ASSETS_PREFIX}/swagger-ui.css"
    app.config["QUART_SCHEMA_REDOC_JS_URL"] = f"{ASSETS_PREFIX}/redoc.standalone.js"
    schema = QuartSchema(
        app,
        info=Info(
            title="trio_resilience test server",
            version=__version__,
            description="Fault injection for testing HTTP clients.",
        ),
        openapi_path="/openapi.json" if docs else None,
        swagger_ui_path="/docs" if docs else None,
        redoc_ui_path="/redocs" if docs else None,
        scalar_ui_path=None,
        openapi_provider_class=ResilienceOpenAPIProvider,
    )
    if docs:
        for found in ASSETS.values():
            found.path()  # a missing package fails here, not on a page
        app.add_url_rule("/redoc", "redoc", schema.redoc_ui)
        app.register_blueprint(assets)
    return schema
