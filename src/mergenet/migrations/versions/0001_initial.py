"""initial schema: coordinator state and rewards ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-24 05:49:15.891931
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contributors",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_table(
        "loop_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "reward_epochs",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("root", sa.String(length=66), nullable=False),
        sa.Column("total", sa.String(length=78), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("tx_nonce", sa.Integer(), nullable=True),
        sa.Column("tx_block", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("reward_epochs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reward_epochs_state"), ["state"], unique=False)

    op.create_table(
        "strategy_weights",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("cause_candidate_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("step", "strategy", name="uq_strategy_step"),
    )
    with op.batch_alter_table("strategy_weights", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_strategy_weights_step"), ["step"], unique=False)

    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("parent_hash", sa.String(length=64), nullable=True),
        sa.Column("recipe", sa.JSON(), nullable=True),
        sa.Column("recipe_hash", sa.String(length=64), nullable=True),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("weights_path", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("gain", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("selection_seed", sa.BigInteger(), nullable=False),
        sa.Column("evaluations_at_accept", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("parent_hash", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False),
        sa.Column("recipe_hash", sa.String(length=64), nullable=False),
        sa.Column("contribution_sha", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sample_seed", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("gain", sa.Float(), nullable=True),
        sa.Column("confirm_gain", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_hash"],
            ["versions.hash"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_candidates_parent_hash"), ["parent_hash"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_candidates_recipe_hash"), ["recipe_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_candidates_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_candidates_strategy"), ["strategy"], unique=False)

    op.create_table(
        "contributions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("parent_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("relative_norm", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("gain", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("scored_on", sa.String(length=64), nullable=True),
        sa.Column("in_pool", sa.Boolean(), nullable=False),
        sa.Column("reward", sa.String(length=78), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["address"],
            ["contributors.address"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_hash"],
            ["versions.hash"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("address", "nonce", name="uq_contribution_nonce"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contributions_address"), ["address"], unique=False)
        batch_op.create_index(batch_op.f("ix_contributions_status"), ["status"], unique=False)

    op.create_table(
        "nonces",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["address"],
            ["contributors.address"],
        ),
        sa.PrimaryKeyConstraint("address", "nonce"),
    )
    op.create_table(
        "reward_accruals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contribution_id", sa.String(length=128), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.String(length=78), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("t", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("epoch_number", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["epoch_number"],
            ["reward_epochs.number"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contribution_id"),
    )
    with op.batch_alter_table("reward_accruals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reward_accruals_account"), ["account"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_reward_accruals_epoch_number"), ["epoch_number"], unique=False
        )

    op.create_table(
        "reward_entries",
        sa.Column("epoch_number", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("cumulative_amount", sa.String(length=78), nullable=False),
        sa.ForeignKeyConstraint(
            ["epoch_number"],
            ["reward_epochs.number"],
        ),
        sa.PrimaryKeyConstraint("epoch_number", "account"),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("sample_seed", sa.BigInteger(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("parent_result", sa.JSON(), nullable=False),
        sa.Column("relative_distance", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("gain", sa.Float(), nullable=False),
        sa.Column("breakdown", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evaluations_candidate_id"), ["candidate_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_candidate_id"))

    op.drop_table("evaluations")
    op.drop_table("reward_entries")
    with op.batch_alter_table("reward_accruals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reward_accruals_epoch_number"))
        batch_op.drop_index(batch_op.f("ix_reward_accruals_account"))

    op.drop_table("reward_accruals")
    op.drop_table("nonces")
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contributions_status"))
        batch_op.drop_index(batch_op.f("ix_contributions_address"))

    op.drop_table("contributions")
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_candidates_strategy"))
        batch_op.drop_index(batch_op.f("ix_candidates_status"))
        batch_op.drop_index(batch_op.f("ix_candidates_recipe_hash"))
        batch_op.drop_index(batch_op.f("ix_candidates_parent_hash"))

    op.drop_table("candidates")
    op.drop_table("versions")
    with op.batch_alter_table("strategy_weights", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_strategy_weights_step"))

    op.drop_table("strategy_weights")
    with op.batch_alter_table("reward_epochs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reward_epochs_state"))

    op.drop_table("reward_epochs")
    op.drop_table("loop_state")
    op.drop_table("contributors")
