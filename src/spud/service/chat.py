"""Chat turns with the whole agent (model `spud-agent`): Spud's tools in the org's workspace."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from pydantic import BaseModel
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from spud.core.errors import ConfigError, ModelNotFound
from spud.core.guards import last_user_turn
from spud.core.messages import Message, Usage
from spud.core.run import RunResult
from spud.service.errors import Conflict, NotFound
from spud.service.modelpool import CancellableModel, Cancelled, ModelPool
from spud.service.owned import OwnedSessions
from spud.service.sessions import RunSpec, SessionService
from spud.service.streaming import ChatStream, OnEvent
from spud.service.tasks import require_write
from spud.service.users import Principal
from spud.service.workspaces import Workspaces
from spud.store.models import MessageRow

AGENT_MODEL = "spud-agent"
CHAT_WORKSPACE = "default"
STOPPED = "stopped"  # a turn stopped by its user: the status, and the kind of its answer


class ChatTurn(BaseModel):
    """What one chat turn produced: the answer, how the run ended, and what it cost."""

    session_id: str
    answer: str
    status: str
    usage: Usage
    rest: str = ""  # what of the answer was not streamed already (all of it, unstreamed)


class ChatService:
    """Runs agent chat turns on worker threads; a session is continued by its id.

    A running turn can be stopped (its streamed part is kept, marked stopped); the last
    turn can be run again, its answer replaced; each turn may name the model it runs on.
    """

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
        self._db = sessionmaker(sessions.store.engine)
        self._locks: dict[str, threading.Lock] = {}
        self._running: dict[str, threading.Event] = {}  # session id -> its turn's stop
        self._guard = threading.Lock()

    def turn(
        self,
        who: Principal,
        text: str,
        session_id: str | None = None,
        history: str = "",
        on_event: OnEvent | None = None,
        model: str | None = None,
    ) -> Future[ChatTurn]:
        """Queue one turn (a new session unless session_id is given); the Future gives the answer.

        history is earlier conversation (from a client that keeps its own) prefixed to a new
        session's first message. on_event (called on the worker thread) gets the answer's
        text as it is generated, each tool step as it happens (see service.streaming) and,
        first, {"session": id} once the turn's session is known. model: one the server
        offers (default: the organisation's default model).
        """
        require_write(who)
        if not text.strip():
            raise ConfigError("the message is empty")
        if session_id is not None and not self.owns(who, session_id):
            raise NotFound(f"no chat {session_id!r} of yours to continue")
        name = self.model_for(who, model)
        task = f"{history}\n\nNow: {text}" if history else text
        return self._executor.submit(self._turn, who, task, session_id, on_event, name)

    def regenerate(
        self,
        who: Principal,
        session_id: str,
        on_event: OnEvent | None = None,
        model: str | None = None,
    ) -> Future[ChatTurn]:
        """Run the chat's last user turn again; what answered it before is replaced."""
        require_write(who)
        if not self.owns(who, session_id):
            raise NotFound(f"no chat {session_id!r} of yours to regenerate")
        name = self.model_for(who, model)
        if last_user_turn(self.sessions.messages(session_id)) == 0:
            raise ConfigError(f"chat {session_id} has no message to answer again")
        return self._executor.submit(self._turn, who, "", session_id, on_event, name, True)

    def stop(self, who: Principal, session_id: str) -> None:
        """Stop the chat's running turn: at once while its answer streams, else before the
        next model call; the part already answered is kept, marked stopped."""
        require_write(who)
        if not self.owns(who, session_id):
            raise NotFound(f"no chat {session_id!r} of yours to stop")
        with self._guard:
            stop = self._running.get(session_id)
        if stop is None:
            raise Conflict(f"no turn is running in chat {session_id}")
        stop.set()

    def model_for(self, who: Principal, model: str | None) -> str:
        """The model a turn runs on: the one chosen, which must be offered, or the org's."""
        if not model:
            return self.sessions.catalog.default(who.org_id)
        offered = self.pool.names()
        if model not in offered:
            raise ModelNotFound(f"unknown model {model!r}: choose one of {', '.join(offered)}")
        return model

    def _turn(
        self,
        who: Principal,
        text: str,
        session_id: str | None,
        on_event: OnEvent | None,
        model: str,
        regenerate: bool = False,
    ) -> ChatTurn:
        stream = ChatStream(on_event) if on_event is not None else None
        stop = threading.Event()
        started: list[str] = []

        def begun(sid: str) -> None:  # a new session: stoppable, then its owner's
            self._begin(sid, stop, started, None)
            self.owned.own(sid, who.org_id, who.user_id, "chat")
            if on_event is not None:
                on_event({"session": sid})

        spec = RunSpec(
            workspace=self.workspaces.workspace(who.org_id, CHAT_WORKSPACE),
            task=text,
            model=CancellableModel(self.pool.get(model), stop.is_set),
            chat=True,
            user_id=who.user_id,
            org_id=who.org_id,
            on_session=begun,
            on_text=stream.on_text if stream else None,
            on_message=stream.on_message if stream else None,
        )
        try:
            if session_id is None:
                before = (0, 0)
                try:
                    result = self.sessions.execute(spec)
                except Cancelled:
                    return self._stopped(started[0], stream)
                session_id = result.session_id
            else:
                with self._session_lock(session_id):  # one turn at a time per conversation
                    self._begin(session_id, stop, started, on_event)
                    if regenerate:
                        text = spec.task = self._rewind(session_id)
                    info = self.sessions.session(session_id)
                    before = (info.prompt_tokens, info.completion_tokens)
                    if regenerate:  # the totals of what is left
                        kept = RunResult(session_id=session_id, status="running")
                        kept.count(self.sessions.messages(session_id))
                        before = (kept.prompt_tokens, kept.completion_tokens)
                    try:
                        result = self.sessions.resume(session_id, spec, message=text)
                    except Cancelled:  # still holding the lock: the stopped answer comes next
                        return self._stopped(session_id, stream)
        finally:
            with self._guard:
                for sid in started:
                    self._running.pop(sid, None)
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

    def _begin(
        self, sid: str, stop: threading.Event, started: list[str], on_event: OnEvent | None
    ) -> None:
        """The turn of this session is running: stop() can reach it, the client may know it."""
        with self._guard:
            self._running[sid] = stop
        started.append(sid)
        if on_event is not None:
            on_event({"session": sid})

    def _rewind(self, session_id: str) -> str:
        """Drop the chat's last user turn and what answered it; that turn's text, to run again."""
        messages = self.sessions.messages(session_id)
        idx = last_user_turn(messages)
        if idx == 0 or messages[idx].role != "user":
            raise ConfigError(f"chat {session_id} has no message to answer again")
        with self._db.begin() as db:
            db.execute(
                delete(MessageRow).where(MessageRow.session_id == session_id, MessageRow.idx >= idx)
            )
        return messages[idx].content

    def _stopped(self, session_id: str, stream: ChatStream | None) -> ChatTurn:
        """A stopped turn: the answer streamed so far is stored as its answer, marked stopped."""
        partial = stream.streamed.strip() if stream else ""
        store = self.sessions.store
        store.append(session_id, Message(role="assistant", content=partial, meta={"kind": STOPPED}))
        summary = partial or "stopped before an answer"
        store.update_session(session_id, status=STOPPED, summary=summary[:2000])
        return ChatTurn(
            session_id=session_id,
            answer=partial or f"[{STOPPED}] {summary}",
            status=STOPPED,
            usage=Usage(),
            rest="" if partial else f"[{STOPPED}] {summary}",
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
