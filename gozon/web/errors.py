"""JSON errors for every 4xx and 5xx: `{"error", "message"[, "field"]}`, never HTML.

    ApiError           raised by handlers and body decoding: status, code, message, field
    HTTPException      Quart's own (404 unknown route, 405 wrong method, 413 too large)
    Transient          a dependency is down or not ready yet (gozon.errors) → 503
"""

from __future__ import annotations

import msgspec
import structlog
from quart import Quart, Response
from werkzeug.exceptions import HTTPException

from gozon.errors import DatabaseUnavailable, Transient

log = structlog.get_logger("gozon.web")

_json = msgspec.json.Encoder()


class Error(msgspec.Struct, omit_defaults=True):
    error: str
    message: str
    field: str | None = None


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = Error(error=error, message=message, field=field)


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status=status, headers=headers, content_type="application/json")


def error_response(status: int, error: str, message: str, field: str | None = None) -> Response:
    return json_response(Error(error=error, message=message, field=field), status)


def too_large(max_body: int) -> str:
    """The sentence of a 413 (the OpenAPI document says the same)."""
    return f"The request body is larger than {max_body // 1024} KiB."


def install(app: Quart, max_body: int) -> None:
    """Answer every error of `app` with a JSON body."""
    http_codes = {
        404: ("not_found", "There is no such route."),
        405: ("method_not_allowed", "This route does not accept that method."),
        413: ("body_too_large", too_large(max_body)),
    }

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        return json_response(exc.body, exc.status)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code, message = http_codes.get(status, (exc.name.lower().replace(" ", "_"), exc.description or exc.name))
        response = error_response(status, code, message)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Transient)
    async def unavailable(exc: Transient) -> Response:
        if isinstance(exc, DatabaseUnavailable):
            log.warning("database unavailable", error=str(exc))
            return error_response(503, "database_unavailable", "The database is unavailable; try again shortly.")
        log.warning("dependency unavailable", error=str(exc))
        return error_response(503, "unavailable", "A service we depend on is unavailable; try again shortly.")

    @app.errorhandler(Exception)
    async def bug(exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "Something went wrong on our side.")
