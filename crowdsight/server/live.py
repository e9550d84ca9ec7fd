"""Live view endpoints: latest redacted snapshot and an MJPEG stream per camera."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
