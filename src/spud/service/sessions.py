"""Sessions: start, run, resume and chat with an agent over a workspace; list and show them."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from spud.config import Settings
from spud.core.agent import CHAT_PROMPT, SYSTEM_PROMPT, Agent, RunResult
from spud.core.errors import ConfigError
from spud.core.messages import Message, ToolCall
from spud.core.protocols import Model, SessionInfo
from spud.memory.store import LOCAL_ORG, LOCAL_USER
from spud.models.loader import load_model
from spud.models.registry import Progress
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.sandbox.policy import Policy, PolicyApprover
from spud.store.sql import SqlStore
from spud.tools.browser import BROWSER_PROMPT, browser_tools, close_browsers
from spud.tools.browser_policy import default_policy_with_browser
from spud.tools.office_verify import Verification, verify_outputs
from spud.tools.sheets import office_tools
from spud.tools.shell import coding_tools

if TYPE_CHECKING:
    from spud.memory.service import MemoryService

Asker = Callable[[ToolCall, str], bool]
TOOLSETS = ("coding", "office", "browser", "memory")
OFFICE_FILE = re.compile(r"\.(xlsx|xlsm|docx|pptx|pdf|csv)\b", re.IGNORECASE)


def toolsets_for(task: str, configured: list[str]) -> set[str]:
    """Coding tools always, the configured sets, and office tools when the task names a file.

    Small models do better with fewer tool descriptions, so sets are added only when needed.
    """
    unknown = set(configured) - set(TOOLSETS)
    if unknown:
        raise ConfigError(f"unknown tool set(s) {sorted(unknown)}; known: {', '.join(TOOLSETS)}")
    sets = {"coding", *configured}
    if OFFICE_FILE.search(task):
        sets.add("office")
    return sets


def check_workspace(path: Path) -> Path:
    """The workspace must be an existing directory; say so clearly if it is not."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise ConfigError(
            f"workspace {path} does not exist (create it, or pass another --workspace)"
        )
    if not path.is_dir():
        raise ConfigError(f"workspace {path} is not a directory")
    return path


class SessionService:
    """Owns the store and builds agents; the CLI, server and API all go through it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.store = SqlStore(self.settings.database_url)
        self._models: dict[str, Model] = {}

    @cached_property
    def memory(self) -> MemoryService:
        from spud.memory.service import MemoryService

        return MemoryService(self.settings, self.store)

    def model(self, name: str | None = None, progress: Progress | None = None) -> Model:
        name = name or self.settings.model
        if name not in self._models:
            self._models[name] = load_model(name, self.settings, progress)
        return self._models[name]

    def agent(
        self,
        model: Model,
        workspace: Path,
        *,
        auto_approve: bool = False,
        ask: Asker | None = None,
        on_message: Callable[[Message], None] | None = None,
        chat: bool = False,
        toolsets: set[str] | None = None,
        user_id: str = LOCAL_USER,
        org_id: str = LOCAL_ORG,
    ) -> Agent:
        s = self.settings
        sandbox = Sandbox(
            SandboxConfig(
                workspace=workspace,
                network=s.sandbox_network,
                timeout_s=s.sandbox_timeout_s,
                memory_mb=s.sandbox_memory_mb,
            )
        )
        policy = Policy.from_file(s.policy_file) if s.policy_file else default_policy_with_browser()
        toolsets = toolsets or {"coding", *s.tools}
        tools = coding_tools(workspace, sandbox)
        if "office" in toolsets:
            tools += office_tools(workspace)
        if chat or "memory" in toolsets:
            tools += self.memory.tools(user_id, org_id)
        if "browser" in toolsets:  # listed first: small models favour the first tools
            tools = browser_tools(workspace, s.browser_policy) + tools
        return Agent(
            model,
            tools,
            self.store,
            approver=PolicyApprover(policy, ask=ask, auto_approve=auto_approve),
            limits=s.limits,
            require_action=not chat,
            on_message=on_message,
        )

    def start(
        self,
        agent: Agent,
        task: str,
        workspace: Path,
        chat: bool = False,
        user_id: str = LOCAL_USER,
        org_id: str = LOCAL_ORG,
    ) -> str:
        if not task.strip():
            raise ConfigError("the task is empty: say what Spud should do")
        prompt = CHAT_PROMPT if chat else SYSTEM_PROMPT
        if "browser_open" in agent.tools:
            prompt += "\n" + BROWSER_PROMPT
        prompt += self.memory.context(user_id, org_id, task)  # memories and skills, cited
        return agent.start(task, str(workspace), prompt)

    def run(self, agent: Agent, session_id: str) -> RunResult:
        return agent.run(session_id)

    def close(self, agent: Agent) -> None:
        """End what an agent holds open (its browser); call from the thread that ran it."""
        close_browsers(list(agent.tools.values()))

    def session(self, session_id: str) -> SessionInfo:
        return self.store.get_session(session_id)

    def messages(self, session_id: str) -> list[Message]:
        return self.store.messages(self.session(session_id).id)

    def sessions(self, limit: int = 50) -> list[SessionInfo]:
        return self.store.list_sessions(limit)

    def toolsets_of(self, session_id: str) -> set[str]:
        """The tool sets a stored session needs to go on: from its task and the calls made."""
        info = self.session(session_id)
        sets = toolsets_for(info.task, self.settings.tools)
        called = {c.name for m in self.store.messages(info.id) for c in m.tool_calls}
        if any(name.startswith("browser_") for name in called):
            sets.add("browser")
        return sets

    def deliverables(self, session_id: str) -> list[Verification]:
        """The office files a session produced, each reopened and verified."""
        info = self.session(session_id)
        return verify_outputs(Path(info.workspace), self.store.messages(info.id))
