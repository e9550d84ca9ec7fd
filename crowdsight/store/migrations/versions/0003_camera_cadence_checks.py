"""CHECK constraints on the cameras' cadences, the bounds of `crowdsight.config.camera`.

The numbers are copied here on purpose: a migration records the schema of its day.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        batch.create_check_constraint(
            op.f("ck_cameras_detect_every_range"), "detect_every >= 1 AND detect_every <= 1000"
        )
        batch.create_check_constraint(
            op.f("ck_cameras_density_every_s_range"),
            "density_every_s >= 0.0 AND density_every_s <= 3600.0",
        )


def downgrade() -> None:
    with op.batch_alter_table("cameras") as batch:
        batch.drop_constraint(op.f("ck_cameras_density_every_s_range"), type_="check")
        batch.drop_constraint(op.f("ck_cameras_detect_every_range"), type_="check")
