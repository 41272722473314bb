"""Sessions record the tool sets they were given (issue 13)."""

import sqlalchemy as sa
from alembic import op

revision = "0006_toolsets"
down_revision = "0001"
branch_labels = ("toolsets",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("toolsets", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("toolsets")
