"""applications.permit_waiting_reason, permit_queue_position, permit_estimated_start_at (why a
paid application's permit waits, mirrored from its PermitRequest)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: a plain ADD COLUMN.
    op.add_column("applications", sa.Column("permit_waiting_reason", sa.String(64), nullable=True))
    op.add_column("applications", sa.Column("permit_queue_position", sa.Integer, nullable=True))
    op.add_column(
        "applications",
        sa.Column("permit_estimated_start_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("applications", "permit_estimated_start_at")
    op.drop_column("applications", "permit_queue_position")
    op.drop_column("applications", "permit_waiting_reason")
