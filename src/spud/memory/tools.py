"""The agent's memory tools: remember, recall and forget, bound to one user in one org."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from spud.core.errors import SpudError
from spud.core.messages import ToolResult
from spud.memory.retrieve import recall, render
from spud.memory.store import MemoryStore, NewMemory


class _MemoryTool:
    def __init__(self, memories: MemoryStore, user_id: str, org_id: str) -> None:
        self.memories, self.user_id, self.org_id = memories, user_id, org_id


class Remember(_MemoryTool):
    name = "remember"
    risk = "write"
    description = (
        "Remember a fact or a preference of the user for later sessions. Give a key (what it "
        "is about) so a newer value replaces the old one."
    )

    class Args(BaseModel):
        text: str = Field(description="The fact or preference, as one sentence.")
        key: str = Field("", description="What it is about, e.g. 'preferred editor'.")
        kind: Literal["fact", "preference"] = "fact"

    def run(self, args: Args) -> ToolResult:
        try:
            memory = self.memories.add(
                self.user_id,
                self.org_id,
                NewMemory(kind=args.kind, text=args.text, key=args.key, source="tool:remember"),
            )
        except SpudError as exc:
            return ToolResult(output=str(exc), ok=False)
        return ToolResult(output=f"remembered as [{memory.cite}]", data={"memory_id": memory.id})


class Recall(_MemoryTool):
    name = "recall"
    risk = "read"
    description = "Search your memories (facts, preferences, past sessions, skills, documents)."

    class Args(BaseModel):
        query: str = Field(description="What to look for.")
        limit: int = Field(5, ge=1, le=20)

    def run(self, args: Args) -> ToolResult:
        hits = recall(self.memories, self.user_id, self.org_id, args.query, k=args.limit)
        if not hits:
            return ToolResult(output="nothing remembered about that")
        untrusted = any(h.memory.untrusted for h in hits)  # web-derived memories among them
        return ToolResult(output="\n".join(render(h.memory) for h in hits), untrusted=untrusted)


class Forget(_MemoryTool):
    name = "forget"
    risk = "write"
    description = "Forget a memory for good, by its id (e.g. m12), with its older versions."

    class Args(BaseModel):
        memory_id: str = Field(description="The memory's id, e.g. m12.")

    def run(self, args: Args) -> ToolResult:
        try:
            gone = self.memories.forget(self.user_id, self.org_id, parse_id(args.memory_id))
        except SpudError as exc:
            return ToolResult(output=str(exc), ok=False)
        return ToolResult(output=f"forgot {', '.join(f'm{i}' for i in gone)}")


def parse_id(text: str) -> int:
    """'m12', '12' or '[m12]' → 12; anything else is a clear error."""
    digits = text.strip().strip("[]").removeprefix("m")
    if not digits.isdigit():
        raise SpudError(f"not a memory id: {text!r} (memory ids look like m12)")
    return int(digits)


def memory_tools(memories: MemoryStore, user_id: str, org_id: str) -> list:
    return [cls(memories, user_id, org_id) for cls in (Remember, Recall, Forget)]
