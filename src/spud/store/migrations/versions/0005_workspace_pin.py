"""Add tasks.workspace_pin: the workspace folder's device and inode, checked before a run."""

import sqlalchemy as sa
from alembic import op

revision = "0005_workspace_pin"
down_revision = "0002_server"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("workspace_pin", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("workspace_pin")
