"""Shared fixtures: a fresh SQLite store and a workspace per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from spud.store.sql import SqlStore


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / 'spud.db'}")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws
