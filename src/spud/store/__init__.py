"""Where sessions and their messages are kept: SQLAlchemy models, Alembic migrations, SqlStore."""
