"""On PostgreSQL, memories get their own full-text search: a tsvector column and a GIN index."""

from alembic import op

revision = "0009_memory_pg_search"
down_revision = "0003"
branch_labels = None
depends_on = None

# The English configuration stems like FTS5's porter tokenizer on SQLite.
COLUMN = (
    "ALTER TABLE memories ADD COLUMN text_fts tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED"
)
INDEX = "CREATE INDEX ix_memories_text_fts ON memories USING gin (text_fts)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite has its FTS5 table (0003)
        op.execute(COLUMN)
        op.execute(INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_memories_text_fts")
        op.execute("ALTER TABLE memories DROP COLUMN text_fts")
