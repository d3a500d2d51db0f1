"""row epochs: private per-epoch row secrets, and which rows each evaluation scored

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 21:10:00

Adds ``row_epochs`` (one row per epoch: commitment, secret, open/reveal times, chain txs) and
two nullable columns on ``evaluations``: ``row_epoch`` and ``rows_label``. Evaluations made
before this migration keep NULL there (they scored the public dev file).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "row_epochs",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("commit_tx", sa.String(length=66), nullable=True),
        sa.Column("reveal_tx", sa.String(length=66), nullable=True),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("row_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rows_label", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("rows_label")
        batch_op.drop_column("row_epoch")
    op.drop_table("row_epochs")
