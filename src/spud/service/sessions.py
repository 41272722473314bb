"""Sessions: one entry point for every run (a RunSpec in, a RunResult out); list and show them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from spud import toolsets as registry
from spud.config import Settings
from spud.core.agent import CHAT_PROMPT, SYSTEM_PROMPT, Agent, Harness, Limits, RunResult
from spud.core.errors import ConfigError
from spud.core.messages import Message, ToolCall
from spud.core.protocols import Model, SessionInfo
from spud.memory.store import LOCAL_ORG, LOCAL_USER
from spud.models.loader import load_model
from spud.models.registry import Progress
from spud.playbooks.base import SYSTEM_HEAD
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.sandbox.policy import Policy, PolicyApprover
from spud.service.streaming import Answering
from spud.store.sql import SqlStore
from spud.tools.office.verify import Verification, verify_outputs

if TYPE_CHECKING:
    from spud.memory.service import MemoryService
    from spud.playbooks import Brief
    from spud.service.catalog import ModelCatalog
    from spud.service.usage import UsageService

Asker = Callable[[ToolCall, str], bool]


def toolsets_for(task: str, configured: list[str], chat: bool = False) -> list[str]:
    """The tool sets a session on this task gets (see spud.toolsets.resolve)."""
    return registry.resolve(task, configured, chat)


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


@dataclass(kw_only=True)
class RunSpec:
    """Everything one run needs. Every surface builds one and hands it to SessionService.

    task: the prompt of a new session (a continued one keeps its own). model: a name from the
    registry (loaded once and kept), a Model object, or None for the configured model.
    toolsets: sets asked for on top of the configured ones and those the task switches on
    (a continued session adds them to the sets it recorded). policy: None means the policy
    file from the settings, else Spud's default policy. ask answers the policy's "ask"
    (None: nobody is there, so those calls are denied with a reason); auto_approve answers
    yes to every "ask" (never to "deny"). limits, harness: None means the settings' limits
    and the plain loop. require_action: None means "unless chat" (a finish with nothing
    done is refused). on_message sees each message as it is stored; on_session gets a new
    session's id before its first step runs. In chat a reply may be a plain-text answer,
    whose text goes to on_text as it is generated.
    """

    workspace: Path
    task: str = ""
    model: str | Model | None = None
    toolsets: list[str] = field(default_factory=list)
    policy: Policy | None = None
    auto_approve: bool = False
    ask: Asker | None = None
    limits: Limits | None = None
    harness: Harness | None = None
    require_action: bool | None = None
    chat: bool = False
    user_id: str = LOCAL_USER
    org_id: str = LOCAL_ORG
    on_message: Callable[[Message], None] | None = None
    on_session: Callable[[str], None] | None = None
    on_text: Callable[[str], None] | None = None
    playbook: str | None = None  # a playbook's name, "none", or None: chosen from the task
    workspace_fd: int | None = None  # the workspace held open (a task's pinned folder)


class Run:
    """An agent built from a spec with its tool sets, open until closed (use it in `with`).

    start() begins a new session and runs it; reply() adds a user turn to the session and
    runs it; resume() goes on from where the session stopped.
    """

    def __init__(
        self, service: SessionService, spec: RunSpec, agent: Agent, sets: list[str]
    ) -> None:
        self.service, self.spec, self.agent, self.toolsets = service, spec, agent, sets
        self.session_id: str | None = None

    def start(self, task: str | None = None) -> RunResult:
        """Create a session for the task (default: the spec's) and run it to its end."""
        self.session_id = self.service.start(
            self.agent,
            task if task is not None else self.spec.task,
            self.spec.workspace,
            self.spec.chat,
            self.spec.user_id,
            self.spec.org_id,
            toolsets=self.toolsets,
            playbook=self.spec.playbook,
        )
        if self.spec.on_session is not None:
            self.spec.on_session(self.session_id)
        return self.agent.run(self.session_id)

    def reply(self, text: str) -> RunResult:
        """The next user turn in this run's session (starts one if there is none yet)."""
        if self.session_id is None:
            return self.start(text)
        self.agent.add_user_message(self.session_id, text)
        return self.agent.run(self.session_id)

    def resume(self) -> RunResult:
        """Go on with this run's session from its last completed step."""
        if self.session_id is None:
            raise ConfigError("there is no session to resume")
        return self.agent.run(self.session_id)

    def close(self) -> None:
        """End what the tool sets hold open (the browser); call from the thread that ran it."""
        registry.close(self.toolsets, list(self.agent.tools.values()))


class SessionService:
    """Owns the store and runs agents; the CLI, server, API and eval all go through it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.store = SqlStore(self.settings.database_url)
        self._models: dict[str, Model] = {}
        self._sets: WeakKeyDictionary[Agent, list[str]] = WeakKeyDictionary()  # for start()
        self._briefs: WeakKeyDictionary[Agent, Brief] = WeakKeyDictionary()  # for start()

    @cached_property
    def memory(self) -> MemoryService:
        from spud.memory.service import MemoryService

        return MemoryService(self.settings, self.store)

    @cached_property
    def usage(self) -> UsageService:
        """The ledger every run's model calls are charged to, and the budgets that stop runs."""
        from spud.service.usage import UsageService

        return UsageService(self.store, self.settings)

    @cached_property
    def catalog(self) -> ModelCatalog:
        """Registered models, pulls, and each organisation's default model."""
        from spud.service.catalog import ModelCatalog

        return ModelCatalog(self.store, self.settings)

    def model(self, name: str | None = None, progress: Progress | None = None) -> Model:
        name = name or self.settings.model
        if name not in self._models:
            self._models[name] = load_model(name, self.settings, progress)
        return self._models[name]

    def default_policy(self) -> Policy:
        """The configured policy file, else Spud's default (shell rules, then tool risks)."""
        s = self.settings
        return Policy.from_file(s.policy_file) if s.policy_file else Policy.default()

    # -- the one entry point ----------------------------------------------------------

    def execute(self, spec: RunSpec) -> RunResult:
        """Build the agent, start a session on spec.task, run it to its end, close."""
        with self.open(spec) as run:
            return run.start()

    def resume(self, session_id: str, spec: RunSpec, message: str | None = None) -> RunResult:
        """Go on with a stored session (with a new user turn first, when message is given)."""
        with self.open(spec, session_id) as run:
            return run.reply(message) if message is not None else run.resume()

    @contextmanager
    def open(self, spec: RunSpec, session_id: str | None = None) -> Iterator[Run]:
        """An agent for the spec, over a stored session when session_id is given; closed after.

        A stored session keeps the tool sets it recorded, plus those spec.task (the next
        message, if any) switches on and those spec.toolsets asks for.
        """
        if session_id is not None:
            info = self.session(session_id)
            recorded = info.toolsets or self._legacy_toolsets(info, spec.chat)
            wanted = [*recorded, *spec.toolsets]
        else:
            wanted = [*self.settings.tools, *spec.toolsets]
        owner = (self.settings, spec.user_id, spec.org_id)  # e.g. their MCP servers
        sets = registry.resolve(spec.task, wanted, spec.chat, owner)
        task = info.task if session_id is not None and not spec.chat else spec.task
        run = Run(self, spec, self._build(spec, sets, task), sets)
        if session_id is not None:
            run.session_id = info.id
            if sets != info.toolsets:
                self.store.update_session(info.id, toolsets=",".join(sets))
        try:
            yield run
        finally:
            run.close()
            self._sets.pop(run.agent, None)
            self._briefs.pop(run.agent, None)

    def _build(self, spec: RunSpec, sets: list[str], task: str = "") -> Agent:
        """The agent for a spec; for a task (not chat), its playbook picks tools and checks."""
        s = self.settings
        model = spec.model
        if model is None or isinstance(model, str):
            model = self.model(model)
        sandbox = Sandbox(
            SandboxConfig(
                workspace=spec.workspace,
                workspace_fd=spec.workspace_fd,
                network=s.sandbox_network,
                timeout_s=s.sandbox_timeout_s,
                memory_mb=s.sandbox_memory_mb,
                protected=[s.policy_file] if s.policy_file else [],
                hidden=[s.home],
            )
        )
        ctx = registry.ToolContext(
            workspace=spec.workspace,
            settings=s,
            sandbox=sandbox,
            user_id=spec.user_id,
            org_id=spec.org_id,
            memory=self.memory,
            task=spec.task,
            chat=spec.chat,
        )
        tools = registry.build(sets, ctx)
        if spec.chat:  # a plain question gets a plain answer; files are written when asked
            writers = {t.name for t in tools if registry.risk_of(t) == "write"}
            in_workspace = {t.name for t in tools if hasattr(t, "workspace")}
            model = Answering(model, spec.on_text, frozenset(writers & in_workspace))
        brief = None
        if not spec.chat and task.strip() and spec.playbook != "none":
            brief = self._brief_for(task, spec.workspace, sandbox, spec.playbook)
        if brief is not None and brief.tools is not None:  # small models: only what it needs
            tools = [t for t in tools if t.name in brief.tools]
        policy = spec.policy or self.default_policy()
        if brief is not None and brief.rules:  # e.g. the tests of a coding task stay as they are
            policy = Policy(rules=brief.rules, default_action="auto").under(policy)
        approver = PolicyApprover(
            policy,
            ask=spec.ask,
            auto_approve=spec.auto_approve,
            risks={t.name: registry.risk_of(t) for t in tools},
        )
        agent = Agent(
            model,
            tools,
            self.usage.metered(self.store, spec.user_id, spec.org_id, model.name),  # charged
            approver=approver,
            limits=self.usage.budgets.limits(spec.user_id, spec.org_id, spec.limits or s.limits),
            require_action=not spec.chat if spec.require_action is None else spec.require_action,
            on_message=spec.on_message,
            harness=spec.harness,
            verifier=brief.verifier if brief is not None else None,
            choices=brief.choices if brief is not None else None,
            opening=brief.opening if brief is not None else None,
        )
        self._sets[agent] = sets
        if brief is not None:
            self._briefs[agent] = brief
        return agent

    # -- the parts, for code that holds an agent itself (tests, benchmarks) ------------

    def agent(
        self,
        model: Model,
        workspace: Path,
        *,
        auto_approve: bool = False,
        ask: Asker | None = None,
        on_message: Callable[[Message], None] | None = None,
        chat: bool = False,
        toolsets: list[str] | set[str] | None = None,
        user_id: str = LOCAL_USER,
        org_id: str = LOCAL_ORG,
    ) -> Agent:
        """An agent with these tool sets (default: the configured ones, and memory in chat)."""
        spec = RunSpec(
            workspace=workspace,
            model=model,
            auto_approve=auto_approve,
            ask=ask,
            on_message=on_message,
            chat=chat,
            user_id=user_id,
            org_id=org_id,
        )
        wanted = list(toolsets) if toolsets is not None else self.settings.tools
        return self._build(spec, toolsets_for("", wanted, chat))

    def start(
        self,
        agent: Agent,
        task: str,
        workspace: Path,
        chat: bool = False,
        user_id: str = LOCAL_USER,
        org_id: str = LOCAL_ORG,
        *,
        toolsets: list[str] | None = None,
        playbook: str | None = None,  # for the playbook hook (see RunSpec.playbook)
    ) -> str:
        """Store a new session for the task, with the prompt its tool sets add; its id."""
        if not task.strip():
            raise ConfigError("the task is empty: say what Spud should do")
        sets = toolsets if toolsets is not None else self._sets.get(agent, [])
        brief = self._briefs.get(agent)  # the playbook chosen when the agent was built
        if brief is None and not chat and agent.verifier is None:  # an agent built by hand
            brief = self.brief(agent, task, workspace, playbook)
            agent.verifier = brief.verifier if brief is not None else None
            agent.choices = brief.choices if brief is not None else {}
            agent.opening = brief.opening if brief is not None else None
        # With a playbook, its steps replace the general loop's way of working.
        prompt = CHAT_PROMPT if chat else SYSTEM_HEAD if brief else SYSTEM_PROMPT
        prompt += registry.prompt(sets)
        recalled = self.memory.context(user_id, org_id, task)  # memories and skills, cited
        prompt += recalled
        agent.notes = recalled  # the drafts see them too
        if brief is not None:
            prompt += brief.prompt
        context = brief.context if brief is not None else ""
        sid = agent.start(task, str(workspace), prompt, context)
        self.store.update_session(sid, toolsets=",".join(sets))
        return sid

    def brief(
        self, agent: Agent, task: str, workspace: Path, playbook: str | None = None
    ) -> Brief | None:
        """The playbook's brief for a task (prompt lines, gathered context, checks), if any."""

        sandbox = getattr(agent.tools.get("bash"), "sandbox", None)
        return None if sandbox is None else self._brief_for(task, workspace, sandbox, playbook)

    def _brief_for(
        self, task: str, workspace: Path, sandbox: Sandbox, playbook: str | None
    ) -> Brief | None:
        from spud.playbooks import brief_for

        name = playbook or self.settings.playbook or None
        return None if name == "none" else brief_for(task, workspace, sandbox, name)

    def run(self, agent: Agent, session_id: str) -> RunResult:
        return agent.run(session_id)

    def close(self, agent: Agent) -> None:
        """End what an agent's tool sets hold open; call from the thread that ran it."""
        registry.close(list(registry.toolsets()), list(agent.tools.values()))

    # -- stored sessions --------------------------------------------------------------

    def session(self, session_id: str) -> SessionInfo:
        return self.store.get_session(session_id)

    def messages(self, session_id: str) -> list[Message]:
        return self.store.messages(self.session(session_id).id)

    def sessions(self, limit: int = 50) -> list[SessionInfo]:
        return self.store.list_sessions(limit)

    def toolsets_of(self, session_id: str) -> list[str]:
        """The tool sets a stored session was given (recorded when it started)."""
        info = self.session(session_id)
        return info.toolsets or self._legacy_toolsets(info, chat=False)

    def _legacy_toolsets(self, info: SessionInfo, chat: bool) -> list[str]:
        """Sessions stored before sets were recorded: what their task and settings give."""
        return toolsets_for(info.task, self.settings.tools, chat)

    def deliverables(self, session_id: str) -> list[Verification]:
        """The office files a session produced, each reopened and verified."""
        info = self.session(session_id)
        return verify_outputs(Path(info.workspace), self.store.messages(info.id))
