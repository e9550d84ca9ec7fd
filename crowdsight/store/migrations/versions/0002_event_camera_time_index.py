"""Composite index for the dashboard's main query: one camera's events, newest first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_camera_start", "events", ["camera_id", "start_ts_s"])


def downgrade() -> None:
    op.drop_index("ix_events_camera_start", table_name="events")
