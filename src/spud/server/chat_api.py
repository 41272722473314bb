"""The web chat's own API: files dropped into a chat (into the workspace, or learned), stop."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, File, Form, UploadFile

from spud.core.errors import SpudError
from spud.server.auth import Svc, User
from spud.server.pages_memory import learn_upload, read_upload
from spud.server.web import MAX_CHAT_FILE
from spud.service.chat import CHAT_WORKSPACE
from spud.service.tasks import require_write

router = APIRouter(prefix="/api/chat", tags=["chat"])


@router.post("/files")
async def add_file(
    who: User,
    svc: Svc,
    file: Annotated[UploadFile, File(description="One file dropped into the chat.")],
    action: Annotated[Literal["workspace", "learn"], Form()] = "workspace",
) -> dict[str, Any]:
    """Put a file into the chat's workspace (a new name if one is taken: nothing is replaced),
    or learn it into your memory as `spud learn` does."""
    require_write(who)
    name = file.filename or ""
    data = await anyio.to_thread.run_sync(read_upload, file, MAX_CHAT_FILE)
    if not data:
        raise SpudError(f"{name or 'the file'} is empty: nothing to add")
    if action == "learn":
        learned = await anyio.to_thread.run_sync(learn_upload, svc, who, name, data)
        return {
            "name": name,
            "action": action,
            "source": learned.source,
            "chunks": learned.chunks,
            "new": learned.new,
        }
    path = await anyio.to_thread.run_sync(
        svc.workspaces.add_file, who.org_id, CHAT_WORKSPACE, name, data
    )
    return {"name": name, "action": action, "path": path, "bytes": len(data)}


@router.post("/{session_id}/stop")
def stop(session_id: str, who: User, svc: Svc) -> dict[str, Any]:
    """Stop the chat's running turn; the part already answered is kept, marked stopped."""
    svc.chat.stop(who, session_id)
    return {"session_id": session_id, "stopping": True}
