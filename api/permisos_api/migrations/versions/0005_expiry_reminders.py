"""applications.expiry_reminder_claimed_at and expiry_reminder_sent_at (permit-expiry reminders)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: a plain ADD COLUMN.
    op.add_column(
        "applications",
        sa.Column("expiry_reminder_claimed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "applications",
        sa.Column("expiry_reminder_sent_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("applications", "expiry_reminder_sent_at")
    op.drop_column("applications", "expiry_reminder_claimed_at")
