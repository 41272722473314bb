"""Add tasks.worker: the worker that has claimed a task and runs it (none when it is free)."""

import sqlalchemy as sa
from alembic import op

revision = "0008_task_claims"
down_revision = "0005_workspace_pin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("worker", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("worker")
