"""evaluations.worker: who computed each evaluation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 00:20:00

One nullable column on ``evaluations``: the pool's stamp on the outcome
(``EvalOutcome.worker``, e.g. ``petals:<candidate prefix>`` when the swarm scored it), so the
history can say which evaluations came through the Petals pool. Older rows keep NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("worker")
