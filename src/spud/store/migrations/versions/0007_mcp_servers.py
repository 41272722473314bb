"""MCP servers configured per user or per organisation (issue 13)."""

import sqlalchemy as sa
from alembic import op

revision = "0007_mcp_servers"
down_revision = "0001"
branch_labels = ("mcp",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),  # "" for the whole organisation
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),  # the McpServer as JSON
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mcp_servers"),
        sa.UniqueConstraint("org_id", "user_id", "name", name="uq_mcp_servers_org_id_user_id_name"),
    )
    op.create_index("ix_mcp_servers_owner", "mcp_servers", ["org_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_mcp_servers_owner", table_name="mcp_servers")
    op.drop_table("mcp_servers")
