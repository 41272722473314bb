"""The memory API every surface calls: learn, sleep, recall, list, edit, forget; owner explicit."""

from __future__ import annotations

from spud.config import Settings
from spud.core.errors import SpudError
from spud.core.protocols import Model
from spud.memory.embed import Embedder
from spud.memory.learn import Learned, learn, learn_text
from spud.memory.retrieve import Hit, context_block, recall
from spud.memory.sleep import Progress, Sleeper, SleepReport, reports
from spud.memory.store import Memory, MemoryStore
from spud.memory.tables import DocumentRow
from spud.memory.tools import memory_tools
from spud.store.sql import SqlStore

CONTEXT_BUDGET_TOKENS = 800
CONTEXT_MEMORIES = 6


def memory_prompt(
    memories: MemoryStore,
    user_id: str,
    org_id: str,
    task: str,
    budget_tokens: int = CONTEXT_BUDGET_TOKENS,
) -> str:
    """The memories and skills relevant to a task as a prompt section ('' if none)."""
    if not task.strip() or memories.count(user_id, org_id) == 0:
        return ""  # nothing to recall: do not load the embedding model at all
    hits = [h for h in recall(memories, user_id, org_id, task, k=CONTEXT_MEMORIES) if h.relevant]
    block = context_block(hits, budget_tokens)
    return f"\n\n{block}" if block else ""


class MemoryService:
    """Memories in the configured database; every call names the user and the organisation."""

    def __init__(self, settings: Settings | None = None, store: SqlStore | None = None) -> None:
        self.settings = settings or Settings()
        self.store = store or SqlStore(self.settings.database_url)
        self.memories = MemoryStore(self.store, Embedder(threads=self.settings.threads))

    def learn(self, user_id: str, org_id: str, target: str) -> list[Learned]:
        return learn(self.memories, user_id, org_id, target)

    def learn_text(self, user_id: str, org_id: str, text: str, source: str) -> Learned:
        """Learn a text that came without a path (an upload): source says where it came from."""
        return learn_text(self.memories, user_id, org_id, text, source)

    def documents(self, user_id: str, org_id: str) -> list[DocumentRow]:
        """The documents learned for this owner, oldest first."""
        return self.memories.documents(user_id, org_id)

    def sleep_reports(self, user_id: str, org_id: str, limit: int = 10) -> list[SleepReport]:
        """The latest sleeps' reports (what each read and added), newest first."""
        return reports(self.memories, user_id, org_id, limit)

    def sleep(
        self,
        user_id: str,
        org_id: str,
        model: Model,
        session_ids: list[str] | None = None,
        progress: Progress | None = None,
    ) -> SleepReport:
        """Sleep on the sessions (all not yet read, or these) and the unslept documents."""
        return Sleeper(self.memories, model, user_id, org_id, progress).run(session_ids)

    def recall(self, user_id: str, org_id: str, query: str, k: int = 5) -> list[Hit]:
        return recall(self.memories, user_id, org_id, query, k)

    def list(
        self, user_id: str, org_id: str, kind: str | None = None, history: bool = False
    ) -> list[Memory]:
        return self.memories.list(user_id, org_id, kind, history)

    def show(self, user_id: str, org_id: str, memory_id: int) -> tuple[Memory, list[Memory]]:
        """A memory and the older versions it replaced."""
        memory = self.memories.get(user_id, org_id, memory_id)
        return memory, self.memories.history(user_id, org_id, memory_id)

    def edit(self, user_id: str, org_id: str, memory_id: int, text: str) -> Memory:
        return self.memories.edit(user_id, org_id, memory_id, text)

    def delete(self, user_id: str, org_id: str, memory_id: int) -> list[int]:
        return self.memories.forget(user_id, org_id, memory_id)

    def tools(self, user_id: str, org_id: str) -> list:
        """remember, recall and forget for an agent working for this user in this org."""
        return memory_tools(self.memories, user_id, org_id)

    def context(self, user_id: str, org_id: str, task: str) -> str:
        try:
            return memory_prompt(self.memories, user_id, org_id, task)
        except SpudError:
            return ""
