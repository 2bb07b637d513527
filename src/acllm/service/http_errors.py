"""acllm's errors as HTTP answers: the error's own status, an OpenAI-style JSON body that says what
was wrong and what to do, and ``Retry-After`` whenever the caller should come back later."""

from __future__ import annotations

import math
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from acllm.errors import AcllmError


def error_body(exc: AcllmError) -> dict[str, Any]:
    return {
        "error": {
            "message": exc.message,
            "type": type(exc).__name__,
            "hint": exc.hint,
            "code": exc.status,
        }
    }


def retry_headers(exc: BaseException) -> dict[str, str]:
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(retry_after)))}  # whole seconds, at least 1


def error_response(exc: AcllmError) -> JSONResponse:
    headers = retry_headers(exc)
    if exc.status == 401:  # RFC 9110: a 401 names the scheme the client should use
        headers["WWW-Authenticate"] = 'Bearer realm="acllm"'
    return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AcllmError)
    return error_response(exc)


def install(app: Starlette) -> None:
    app.add_exception_handler(AcllmError, _handle)
