"""One shape for every 422: FastAPI's validation list plus a one-line ``message``.

Whether a request fails pydantic validation, carries a body that is not UTF-8 JSON, or is
well-formed but cannot be met (a scene that does not parse, too many metric points), the
client gets ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}], "message": "..."}``,
which matches the documented ``HTTPValidationError`` schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from crowdsight.core.errors import ConfigError, InputError
from crowdsight.store.records import contains_nul


def unprocessable(msg: str, loc: Sequence[str | int] = ("body",)) -> RequestValidationError:
    """An error to ``raise`` for a request that is well-formed but cannot be met (→ 422).

    Example:
        >>> raise unprocessable("ids cannot change", ("body", "id"))  # doctest: +SKIP
    """
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": "value_error"}])


def reject_nul(request: Request) -> None:
    """App-wide dependency: a NUL character in the path or query is a 422, not a DB error."""
    for key, value in request.path_params.items():
        if contains_nul(value):
            raise unprocessable("contains a NUL character", ("path", key))
    for key, value in request.query_params.multi_items():
        if contains_nul(value) or contains_nul(key):
            raise unprocessable("contains a NUL character", ("query", key))


def _summary(errors: Sequence[Any]) -> str:
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


#: The parts of a validation error a client gets back. The submitted value (``input``) and
#: the validator's context are left out: they could echo a password, and a NaN or Infinity
#: input cannot even be written as JSON.
_SHOWN = ("loc", "msg", "type")


def _error_response(errors: Sequence[Any]) -> JSONResponse:
    shown = [{k: err[k] for k in _SHOWN if k in err} for err in errors]
    detail = jsonable_encoder(shown, custom_encoder={Exception: str})
    return JSONResponse(status_code=422, content={"detail": detail, "message": _summary(errors)})


def _validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _error_response(errors)


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette answers 400 for a body it cannot decode; that is a malformed request too.
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 400:
        return _error_response(
            [{"loc": ("body",), "msg": f"not valid UTF-8 JSON ({exc.detail})", "type": "json"}]
        )
    return await http_exception_handler(request, exc)  # type: ignore[arg-type]


def _user_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    # InputError / ConfigError raised below a router: the request cannot be met as given.
    return _error_response([{"loc": ("body",), "msg": str(exc), "type": "value_error"}])


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(InputError, _user_error_handler)
    app.add_exception_handler(ConfigError, _user_error_handler)
