"""Which append ends an agent step: only that commit waits for the disk (one fsync a step).

Every append is committed before it returns, so a killed process loses nothing. Appends
inside a step skip the wait for the disk; the append that ends the step waits, and its
flush carries the step's earlier commits with it (the log is written in order). A power
cut therefore loses at most the step in progress, which a resumed run redoes.
"""

from __future__ import annotations

import threading

from spud.core.messages import Message


class StepEnds:
    """Tells from the messages themselves whether an append ends its step.

    Within a step: the system prompt (the task follows it), an assistant message (its
    results, or the note on an invalid reply, follow it) and a tool result while other calls
    of its step still have none. Everything else ends a step, as does a tool result whose
    step this process did not see begin (e.g. a run resumed after a restart).
    """

    def __init__(self) -> None:
        self._pending: dict[str, set[str]] = {}  # session -> call ids still without a result
        self._lock = threading.Lock()

    def ends_step(self, session_id: str, message: Message) -> bool:
        """Whether this append ends its step; notes the message as written."""
        with self._lock:
            if message.role == "system":
                return False
            if message.role == "assistant":
                calls = {c.id for c in message.tool_calls}
                if calls:
                    self._pending[session_id] = calls
                else:
                    self._pending.pop(session_id, None)
                return False
            if message.role == "tool":
                pending = self._pending.get(session_id)
                if pending is None:
                    return True
                pending.discard(message.tool_call_id or "")
                if pending:
                    return False
            self._pending.pop(session_id, None)
            return True
