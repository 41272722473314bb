"""All services the server uses, built once from the settings."""

from __future__ import annotations

import secrets

from spud.config import Settings
from spud.executors import executor_for
from spud.service.audit import AuditLog
from spud.service.chat import ChatService
from spud.service.modelpool import ModelPool
from spud.service.owned import OwnedSessions
from spud.service.sessions import SessionService
from spud.service.tasks import TaskService
from spud.service.users import UserService
from spud.service.workspaces import Workspaces

FIRST_ORG = "default"
FIRST_ADMIN = "admin"


class Services:
    """Sessions, users, audit, workspaces, models, tasks and chat over one store."""

    def __init__(
        self,
        settings: Settings,
        extra_models: list[str] | None = None,
        workers: int = 4,
        approval_timeout_s: float = 600.0,
        model_delay_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.sessions = SessionService(settings)
        store = self.sessions.store
        self.users = UserService(store)
        self.audit = AuditLog(store)
        self.owned = OwnedSessions(store)
        self.workspaces = Workspaces(settings.home)
        self.pool = ModelPool(settings, extra_models, model_delay_s)
        executor = executor_for(settings.executor, workers, settings.ray_address, "spud-task")
        self.tasks = TaskService(
            self.sessions,
            self.pool,
            self.workspaces,
            self.audit,
            workers,
            approval_timeout_s,
            executor,  # the settings' executor: this process's threads, or Ray workers
        )
        self.chat = ChatService(self.sessions, self.pool, self.workspaces, workers)

    def first_admin(self, password: str | None = None) -> tuple[str, str] | None:
        """On first run: create the admin (and organisation); returns the login, else None."""
        if self.users.has_users():
            return None
        password = password or secrets.token_urlsafe(12)
        admin = self.users.add_user(FIRST_ADMIN, password, FIRST_ORG, "admin")
        self.audit.record(
            "spud", "user.add", org_id=admin.org_id, target=FIRST_ADMIN, detail="first-run admin"
        )
        return FIRST_ADMIN, password

    def sleep_night(self) -> None:
        """The nightly sleep: each user's own sessions and documents, on the server's model."""
        model = self.pool.get(self.settings.model)  # the shared, serialized instance
        for user in self.users.users():
            sessions = self.owned.of_user(user.user_id, user.org_id)
            self.sessions.memory.sleep(user.user_id, user.org_id, model, sessions)

    def close(self) -> None:
        self.tasks.shutdown()
        self.chat.shutdown()
        self.audit.close()  # the queued request trail is committed before the store closes
        self.sessions.store.close()
        self.pool.close()  # the model server it started, if any
