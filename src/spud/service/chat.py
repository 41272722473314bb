"""Chat turns with the whole agent (model `spud-agent`): Spud's tools in the org's workspace."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from pydantic import BaseModel

from spud.core.errors import ConfigError
from spud.core.messages import Usage
from spud.service.errors import NotFound
from spud.service.modelpool import ModelPool
from spud.service.owned import OwnedSessions
from spud.service.sessions import RunSpec, SessionService
from spud.service.streaming import ChatStream, OnEvent
from spud.service.tasks import require_write
from spud.service.users import Principal
from spud.service.workspaces import Workspaces

AGENT_MODEL = "spud-agent"
CHAT_WORKSPACE = "default"


class ChatTurn(BaseModel):
    """What one chat turn produced: the answer, how the run ended, and what it cost."""

    session_id: str
    answer: str
    status: str
    usage: Usage
    rest: str = ""  # what of the answer was not streamed already (all of it, unstreamed)


class ChatService:
    """Runs agent chat turns on worker threads; a session is continued by its id."""

    def __init__(
        self,
        sessions: SessionService,
        pool: ModelPool,
        workspaces: Workspaces,
        workers: int = 4,
    ) -> None:
        self.sessions = sessions
        self.pool = pool
        self.workspaces = workspaces
        # Separate from the task workers, so tasks waiting for approvals never hold up chat.
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spud-chat")
        self.owned = OwnedSessions(sessions.store)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def turn(
        self,
        who: Principal,
        text: str,
        session_id: str | None = None,
        history: str = "",
        on_event: OnEvent | None = None,
    ) -> Future[ChatTurn]:
        """Queue one turn (a new session unless session_id is given); the Future gives the answer.

        history is earlier conversation (from a client that keeps its own) prefixed to a new
        session's first message. on_event (called on the worker thread) gets the answer's
        text as it is generated and each tool step as it happens (see service.streaming).
        """
        require_write(who)
        if not text.strip():
            raise ConfigError("the message is empty")
        if session_id is not None and not self.owns(who, session_id):
            raise NotFound(f"no chat {session_id!r} of yours to continue")
        task = f"{history}\n\nNow: {text}" if history else text
        return self._executor.submit(self._turn, who, task, session_id, on_event)

    def _turn(
        self, who: Principal, text: str, session_id: str | None, on_event: OnEvent | None
    ) -> ChatTurn:
        stream = ChatStream(on_event) if on_event is not None else None
        spec = RunSpec(
            workspace=self.workspaces.workspace(who.org_id, CHAT_WORKSPACE),
            task=text,
            model=self.pool.get(self.sessions.catalog.default(who.org_id)),  # the org's default
            chat=True,
            user_id=who.user_id,
            org_id=who.org_id,
            on_session=lambda sid: self.owned.own(sid, who.org_id, who.user_id, "chat"),
            on_text=stream.on_text if stream else None,
            on_message=stream.on_message if stream else None,
        )
        if session_id is None:
            before = (0, 0)
            result = self.sessions.execute(spec)
            session_id = result.session_id
        else:
            with self._session_lock(session_id):  # one turn at a time per conversation
                info = self.sessions.session(session_id)
                before = (info.prompt_tokens, info.completion_tokens)
                result = self.sessions.resume(session_id, spec, message=text)
        answer = (
            result.summary if result.status == "finished" else f"[{result.status}] {result.summary}"
        )
        usage = Usage(
            prompt_tokens=result.prompt_tokens - before[0],
            completion_tokens=result.completion_tokens - before[1],
            seconds=result.seconds,
        )
        rest = stream.rest(answer) if stream else answer
        return ChatTurn(
            session_id=session_id, answer=answer, status=result.status, usage=usage, rest=rest
        )

    def owns(self, who: Principal, session_id: str) -> bool:
        """A chat is continued only by the user who started it (its turns become their memory)."""
        owner = self.owned.owner(session_id)
        return owner is not None and (owner.org_id, owner.user_id) == (who.org_id, who.user_id)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _session_lock(self, session_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(session_id, threading.Lock())
