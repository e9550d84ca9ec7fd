"""Serve the browser dashboard (plain ES modules, no build step) at ``/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")


def mount(app: FastAPI) -> None:
    """Mount the dashboard's static files at ``/`` (``index.html`` for ``/``).

    Call this after every API router is included: the mount matches every path,
    so routes registered later would be shadowed.

    Args:
        app: The FastAPI application to serve the dashboard from.
    """
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
