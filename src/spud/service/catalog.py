"""The models page's service: registered models, pulled or not, each org's default, pulls."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.orm import sessionmaker

from spud.config import Settings
from spud.core.errors import ConfigError
from spud.models.registry import REGISTRY, get_spec, model_path, pull
from spud.service.ledger import OrgModelRow
from spud.store.models import utcnow
from spud.store.sql import SqlStore


class ModelEntry(BaseModel):
    """A model as the models page lists it."""

    name: str
    description: str = ""
    size: int | None = None
    context_window: int | None = None
    license: str = ""
    registered: bool  # in Spud's registry: can be pulled
    pulled: bool  # its file is here (registered models only; others are remote or given)
    offered: bool  # tasks and chats can use it now


class PullJob(BaseModel):
    """A pull running (or run) in the background, with its progress in bytes."""

    name: str
    state: Literal["running", "done", "failed"] = "running"
    done: int = 0
    total: int = 0
    error: str = ""
    started_at: datetime
    finished_at: datetime | None = None


class ModelCatalog:
    """What the models page shows and changes; pulls run on their own threads."""

    def __init__(self, store: SqlStore, settings: Settings) -> None:
        self.settings = settings
        self._db = sessionmaker(store.engine, expire_on_commit=False)
        self._jobs: dict[str, PullJob] = {}
        self._lock = threading.Lock()

    # -- each organisation's default -------------------------------------------------------

    def default(self, org_id: str) -> str:
        """The model an organisation's tasks and chats use when they name none."""
        with self._db() as db:
            row = db.get(OrgModelRow, org_id)
        return row.model if row is not None else self.settings.model

    def set_default(self, org_id: str, model: str, offered: list[str], set_by: str = "") -> None:
        """Make a model the organisation's default; it must be one the server offers now."""
        if model not in offered:
            hint = f" (pull it first: `spud models pull {model}`)" if model in REGISTRY else ""
            raise ConfigError(f"{model!r} is not offered here{hint}; offered: {', '.join(offered)}")
        with self._db.begin() as db:
            row = db.get(OrgModelRow, org_id)
            if row is None:
                row = OrgModelRow(org_id=org_id, model=model)
                db.add(row)
            row.model, row.set_by, row.set_at = model, set_by, utcnow()

    # -- what there is -------------------------------------------------------------------

    def entries(self, offered: list[str]) -> list[ModelEntry]:
        """Every registered model (pulled or not), then the other models the server offers."""
        out = []
        for spec in REGISTRY.values():
            path = model_path(spec, self.settings.model_cache)
            pulled = path.is_file()
            out.append(
                ModelEntry(
                    name=spec.name,
                    description=spec.description,
                    size=spec.size or (path.stat().st_size if pulled else None),
                    context_window=spec.context_window,
                    license=spec.license,
                    registered=True,
                    pulled=pulled,
                    offered=spec.name in offered,
                )
            )
        for name in offered:
            if name not in REGISTRY:
                out.append(ModelEntry(name=name, registered=False, pulled=False, offered=True))
        return out

    # -- pulls ---------------------------------------------------------------------------

    def pull(self, name: str) -> PullJob:
        """Start pulling a registered model in the background (or return the running pull)."""
        spec = get_spec(name)  # an unknown name is a clear error
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.state == "running":
                return job.model_copy()
            job = PullJob(name=name, started_at=utcnow())
            self._jobs[name] = job
        cache = self.settings.model_cache

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def work() -> None:
            try:
                pull(spec, cache, progress)
                job.state = "done"
            except Exception as exc:  # the page says why; the next pull can try again
                job.state, job.error = "failed", str(exc)[:2000]
            finally:
                job.finished_at = utcnow()

        threading.Thread(target=work, name=f"spud-pull-{name}", daemon=True).start()
        return job.model_copy()

    def pulls(self) -> list[PullJob]:
        """Every pull since the server started, newest first."""
        with self._lock:
            jobs = [j.model_copy() for j in self._jobs.values()]
        return sorted(jobs, key=lambda j: j.started_at, reverse=True)
