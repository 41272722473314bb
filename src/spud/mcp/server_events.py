"""The MCP endpoint's recent stream events, so a client that lost its stream picks up again."""

from __future__ import annotations

import secrets
from collections import OrderedDict

import anyio
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage

MAX_EVENTS = 10_000  # across all streams; the oldest go first


class MemoryEventStore(EventStore):
    """The last events of every SSE stream, in memory (a restart forgets them).

    Event ids are random, so one caller cannot name another's stream to replay it (a session
    is also bound to the key that opened it).
    """

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._events: OrderedDict[str, tuple[str, JSONRPCMessage | None]] = OrderedDict()
        self._lock = anyio.Lock()

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = secrets.token_urlsafe(18)
        async with self._lock:
            self._events[event_id] = (stream_id, message)
            while len(self._events) > self.max_events:
                self._events.popitem(last=False)
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        async with self._lock:
            found = self._events.get(last_event_id)
            if found is None:
                return None
            stream_id = found[0]
            after, seen = [], False
            for event_id, (stream, message) in self._events.items():
                if seen and stream == stream_id and message is not None:
                    after.append(EventMessage(message, event_id))
                seen = seen or event_id == last_event_id
        for event in after:
            await send_callback(event)
        return stream_id
