"""Serve the browser dashboard (plain ES modules, no build step) at ``/``.

The dashboard is static: ``index.html``, ``app.js`` (with ``api.js`` and ``charts.js``) and
``style.css`` under ``crowdsight/server/static``. It talks to the REST API with the session
cookie that ``POST /api/auth/login`` sets, so it needs no token handling and no server-side
templates. Nothing is loaded from other origins, which lets the pages carry a strict
Content-Security-Policy: an injected script or image from elsewhere would not run or load.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).with_name("static")

#: Same-origin only; inline scripts and styles are refused (the dashboard uses none).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class DashboardFiles(StaticFiles):
    """`StaticFiles` that adds the security headers to every dashboard file."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file's response (``index.html`` for ``/``) with `SECURITY_HEADERS`."""
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount(app: FastAPI) -> None:
    """Mount the dashboard's static files at ``/`` (``index.html`` for ``/``).

    Call this after every API router is included: the mount matches every path, so routes
    registered later would be shadowed. Unknown paths still answer a JSON 404.

    Args:
        app: The FastAPI application to serve the dashboard from.

    Example:
        >>> app = FastAPI()
        >>> mount(app)
        >>> [r.path for r in app.routes][-1]
        ''
    """
    app.mount("/", DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")
