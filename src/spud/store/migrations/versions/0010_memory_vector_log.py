"""On SQLite, a log of memory changes (by triggers) that keeps the vector index files in step."""

from alembic import op

revision = "0010_memory_vector_log"
down_revision = "0009_memory_pg_search"
branch_labels = None
depends_on = None

# One row per memory written, superseded, re-embedded or deleted; ids only, never text or vectors.
LOG = (
    "CREATE TABLE memory_vector_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "memory_id INTEGER NOT NULL, user_id VARCHAR(100) NOT NULL, org_id VARCHAR(100) NOT NULL)",
    "CREATE TRIGGER memories_log_insert AFTER INSERT ON memories BEGIN "
    "INSERT INTO memory_vector_log(memory_id, user_id, org_id) "
    "VALUES (new.id, new.user_id, new.org_id); END",
    "CREATE TRIGGER memories_log_delete AFTER DELETE ON memories BEGIN "
    "INSERT INTO memory_vector_log(memory_id, user_id, org_id) "
    "VALUES (old.id, old.user_id, old.org_id); END",
    "CREATE TRIGGER memories_log_update AFTER UPDATE OF vector, superseded_by ON memories BEGIN "
    "INSERT INTO memory_vector_log(memory_id, user_id, org_id) "
    "VALUES (new.id, new.user_id, new.org_id); END",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # elsewhere the exact index checks the table
        for statement in LOG:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS memories_log_{trigger}")
        op.execute("DROP TABLE IF EXISTS memory_vector_log")
