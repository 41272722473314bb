"""SQLAlchemy tables for memories, learned documents, what sleep has read, and sleep runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from spud.store.models import Base, UtcDateTime, utcnow

KINDS = ("fact", "preference", "episode", "skill", "chunk", "selftest")


class DocumentRow(Base):
    """A document the user asked Spud to learn (`spud learn`), split into chunk memories."""

    __tablename__ = "memory_documents"
    __table_args__ = (Index("ix_memory_documents_owner", "user_id", "org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    chunks: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    slept_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class MemoryRow(Base):
    """One memory; a superseded fact keeps its row (history) and points at its successor."""

    __tablename__ = "memories"
    __table_args__ = (
        Index("ix_memories_owner_kind", "user_id", "org_id", "kind"),
        Index("ix_memories_hash", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[str] = mapped_column(Text, default="{}")
    content_hash: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("memory_documents.id", ondelete="CASCADE"), nullable=True, index=True
    )
    superseded_by: Mapped[int | None] = mapped_column(nullable=True)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SleptRow(Base):
    """A session or document that sleep has already turned into memories (idempotence)."""

    __tablename__ = "memory_slept"

    user_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    slept_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SleepRunRow(Base):
    """One sleep: when it ran for whom, and its report as JSON."""

    __tablename__ = "memory_sleep_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    report: Mapped[str] = mapped_column(Text, default="{}")
