"""Usage ledger, budgets per person and organisation, default model per organisation (issue 16)."""

import sqlalchemy as sa
from alembic import op

revision = "0008_usage"
down_revision = "0001"
branch_labels = ("usage",)
depends_on = None


def _at(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _at("at"),
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage"),
    )
    op.create_index("ix_usage_owner_at", "usage", ["org_id", "user_id", "at"])
    op.create_index("ix_usage_session", "usage", ["session_id"])
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),  # "" for the whole organisation
        sa.Column("usd", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("set_by", sa.String(100), nullable=False),
        _at("set_at"),
        sa.PrimaryKeyConstraint("id", name="pk_budgets"),
        sa.UniqueConstraint("org_id", "user_id", name="uq_budgets_org_id_user_id"),
    )
    op.create_table(
        "org_models",
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("set_by", sa.String(100), nullable=False),
        _at("set_at"),
        sa.PrimaryKeyConstraint("org_id", name="pk_org_models"),
    )


def downgrade() -> None:
    op.drop_table("org_models")
    op.drop_table("budgets")
    op.drop_index("ix_usage_session", table_name="usage")
    op.drop_index("ix_usage_owner_at", table_name="usage")
    op.drop_table("usage")
