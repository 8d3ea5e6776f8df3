"""applications.permit_retries (an admin's re-queues of a failed permit); the PermitRequest
name in permit_history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column("permit_retries", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "permit_history", sa.Column("permit_request", sa.String(length=63), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("permit_history", "permit_request")
    op.drop_column("applications", "permit_retries")
