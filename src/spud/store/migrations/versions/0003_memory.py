"""Memory tables (issue 7), with an FTS5 index kept in step by triggers on SQLite."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("memory",)
depends_on = None

FTS = (
    "CREATE VIRTUAL TABLE memory_fts USING fts5(text, tokenize='porter unicode61')",
    "CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN "
    "INSERT INTO memory_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN "
    "DELETE FROM memory_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER memories_fts_update AFTER UPDATE OF text ON memories BEGIN "
    "UPDATE memory_fts SET text = new.text WHERE rowid = old.id; END",
)


def upgrade() -> None:
    op.create_table(
        "memory_documents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slept_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_memory_documents"),
    )
    op.create_index("ix_memory_documents_owner", "memory_documents", ["user_id", "org_id"])
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["memory_documents.id"],
            name="fk_memories_document_id_memory_documents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_memories"),
    )
    op.create_index("ix_memories_owner_kind", "memories", ["user_id", "org_id", "kind"])
    op.create_index("ix_memories_hash", "memories", ["content_hash"])
    op.create_index("ix_memories_document_id", "memories", ["document_id"])
    op.create_table(
        "memory_slept",
        sa.Column("user_id", sa.String(100), nullable=False),
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("slept_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "org_id", "source", name="pk_memory_slept"),
    )
    op.create_table(
        "memory_sleep_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(100), nullable=False),
        sa.Column("org_id", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_memory_sleep_runs"),
    )
    if op.get_bind().dialect.name == "sqlite":  # other databases: dense recall only
        for statement in FTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS memory_fts")  # its triggers go with `memories`
    op.drop_table("memory_sleep_runs")
    op.drop_table("memory_slept")
    op.drop_index("ix_memories_document_id", table_name="memories")
    op.drop_index("ix_memories_hash", table_name="memories")
    op.drop_index("ix_memories_owner_kind", table_name="memories")
    op.drop_table("memories")
    op.drop_index("ix_memory_documents_owner", table_name="memory_documents")
    op.drop_table("memory_documents")
