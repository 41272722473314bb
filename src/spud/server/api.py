"""The task API and what the web app reads: tasks, approvals, sessions, files, keys, audit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from spud.core.messages import Message
from spud.core.protocols import SessionInfo
from spud.server.auth import Admin, Svc, User
from spud.service.audit import AuditEntry
from spud.service.errors import NotFound
from spud.service.tasks import ApprovalInfo, TaskInfo, TaskSpec
from spud.service.users import KeyInfo, Principal, Role
from spud.service.workspaces import FileEntry

router = APIRouter(prefix="/api")
POLL_S = 0.1
REFRESH_S = 1.0
Limit = Query(50, ge=1, le=500)


# -- tasks ----------------------------------------------------------------------------


@router.post("/tasks", status_code=201, tags=["tasks"])
def create_task(spec: TaskSpec, who: User, svc: Svc) -> TaskInfo:
    """Queue a task; it runs in the background (watch it at /api/tasks/{id}/events)."""
    return svc.tasks.create(who, spec)


@router.get("/tasks", tags=["tasks"])
def list_tasks(who: User, svc: Svc, limit: int = Limit) -> list[TaskInfo]:
    """Your organisation's tasks, newest first."""
    return svc.tasks.list(who, limit)


@router.get("/tasks/{task_id}", tags=["tasks"])
def get_task(task_id: str, who: User, svc: Svc) -> TaskInfo:
    return svc.tasks.get(who, task_id)


@router.post("/tasks/{task_id}/cancel", tags=["tasks"])
def cancel_task(task_id: str, who: User, svc: Svc) -> TaskInfo:
    """Stop a task at its next step; a cancelled task is not resumed."""
    return svc.tasks.cancel(who, task_id)


@router.get("/tasks/{task_id}/approvals", tags=["tasks"])
def task_approvals(task_id: str, who: User, svc: Svc) -> list[ApprovalInfo]:
    return svc.tasks.approvals(who, task_id)


class Decision(BaseModel):
    decision: Literal["allow", "deny"]


@router.post("/approvals/{approval_id}", tags=["tasks"])
def decide(approval_id: str, body: Decision, who: User, svc: Svc) -> ApprovalInfo:
    """Answer a pending approval: the task goes on at once."""
    return svc.tasks.decide(who, approval_id, body.decision)


@router.get("/tasks/{task_id}/events", tags=["tasks"], response_model=None)
async def task_events(
    task_id: str,
    who: User,
    svc: Svc,
    after: int = Query(0, ge=0, description="Send events from this message index on."),
    last_event_id: str | None = Header(None),
) -> EventSourceResponse:
    """Server-Sent Events: step, tool_call, result, user, approval, approval_decided, finish.

    Each event's id is a message index; reconnecting with Last-Event-ID continues after it.
    The stream ends after `finish`.
    """
    if last_event_id and last_event_id.isdigit():
        after = int(last_event_id) + 1
    await anyio.to_thread.run_sync(svc.tasks.get, who, task_id)  # 404 before streaming

    async def stream() -> AsyncIterator[dict[str, Any]]:
        cursor, seen, version, polled = after, {}, -1, 0.0
        while True:
            now = time.monotonic()
            if svc.tasks.version(task_id) != version or now - polled > REFRESH_S:
                version, polled = svc.tasks.version(task_id), now
                events, cursor, done = await anyio.to_thread.run_sync(
                    svc.tasks.events, who, task_id, cursor, seen
                )
                for e in events:
                    yield {"id": e.id, "event": e.event, "data": json.dumps(e.data)}
                if done:
                    return
            await asyncio.sleep(POLL_S)

    return EventSourceResponse(stream(), ping=15)


# -- sessions and files -----------------------------------------------------------------


class SessionDetail(BaseModel):
    session: SessionInfo
    messages: list[Message]


@router.get("/sessions", tags=["sessions"])
def list_sessions(
    who: User,
    svc: Svc,
    q: str = Query("", max_length=200, description="Search in task and summary."),
    kind: Literal["task", "chat"] | None = None,
    limit: int = Limit,
) -> list[SessionInfo]:
    """Your organisation's sessions (tasks and chats), most recently active first."""
    return svc.owned.list(who.org_id, q, kind, limit)


@router.get("/sessions/{session_id}", tags=["sessions"])
def get_session(session_id: str, who: User, svc: Svc) -> SessionDetail:
    """A session with its whole trajectory."""
    info = svc.owned.get(who.org_id, session_id)
    if info is None:
        raise NotFound(f"no session {session_id!r}")
    return SessionDetail(session=info, messages=svc.sessions.messages(session_id))


@router.get("/files", tags=["files"])
def list_files(
    who: User, svc: Svc, path: str = Query("", max_length=1000, description="A folder.")
) -> list[FileEntry]:
    """A folder of your organisation's workspaces ('' is the top, one folder per workspace)."""
    return svc.workspaces.list(who.org_id, path)


@router.get("/files/download", tags=["files"], response_class=FileResponse)
def download(who: User, svc: Svc, path: str = Query(..., max_length=1000)) -> FileResponse:
    """One file of your organisation's workspaces, as a download."""
    file = svc.workspaces.file(who.org_id, path)  # opened without following links
    return FileResponse(file.proc_path, filename=file.name, background=BackgroundTask(file.close))


# -- users, keys, audit ------------------------------------------------------------------


@router.get("/me", tags=["users"])
def me(who: User) -> Principal:
    """Who you are signed in as."""
    return who


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=1000)
    role: Role = "member"


@router.get("/users", tags=["users"])
def list_users(who: Admin, svc: Svc) -> list[Principal]:
    """The users of your organisation (admins only)."""
    return svc.users.users(who.org_id)


@router.post("/users", status_code=201, tags=["users"])
def add_user(body: NewUser, who: Admin, svc: Svc) -> Principal:
    """Add a user to your organisation (admins only)."""
    return svc.users.add_user(body.username, body.password, who.org, body.role)


class NewKey(BaseModel):
    name: str = Field(default="", max_length=100)


class CreatedKey(BaseModel):
    key: KeyInfo
    secret: str = Field(description="The API key itself: shown only now, stored hashed.")


@router.get("/keys", tags=["users"])
def list_keys(who: User, svc: Svc) -> list[KeyInfo]:
    """Your API keys (without their secrets)."""
    return svc.users.keys(who.user_id)


@router.post("/keys", status_code=201, tags=["users"])
def create_key(body: NewKey, who: User, svc: Svc) -> CreatedKey:
    """A new API key for you; the secret is in this answer only."""
    info, secret = svc.users.create_key(who.user_id, body.name)
    return CreatedKey(key=info, secret=secret)


@router.delete("/keys/{key_id}", tags=["users"])
def revoke_key(key_id: str, who: User, svc: Svc) -> dict[str, bool]:
    """Revoke one of your API keys."""
    if not svc.users.revoke_key(who.user_id, key_id):
        raise NotFound(f"no key {key_id!r}")
    return {"revoked": True}


@router.get("/audit", tags=["users"])
def audit(who: Admin, svc: Svc, limit: int = Limit) -> list[AuditEntry]:
    """Your organisation's audit log, newest first (admins only)."""
    return svc.audit.entries(who.org_id, limit)
