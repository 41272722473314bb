"""The tool-set registry: each set is one module of spud.toolsets that registers itself."""

from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from spud.core.errors import ConfigError

if TYPE_CHECKING:
    from spud.config import Settings
    from spud.core.protocols import Tool
    from spud.memory.service import MemoryService
    from spud.sandbox.bubblewrap import Sandbox

Risk = Literal["read", "write", "execute", "send"]
RISKS: tuple[str, ...] = get_args(Risk)
ENTRY_POINTS = "spud.toolsets"  # other packages add sets under this entry-point group

_SETS: dict[str, ToolSet] = {}
_loaded = False
_loading = threading.RLock()  # a set module may ask for the registry while it loads


@dataclass(kw_only=True)
class ToolContext:
    """What a set may use to build its tools for one session."""

    workspace: Path
    settings: Settings
    sandbox: Sandbox
    user_id: str
    org_id: str
    memory: MemoryService | None = None
    task: str = ""
    chat: bool = False


class ToolSet:
    """One tool set. Subclass it in a module of spud.toolsets and decorate it with @register.

    name: how configuration, the CLI and the API call it. title: the web form's label.
    summary: one line for the CLI help. prompt: text added to the system prompt while the
    set is on. order: where its tools go in the tool list (small models favour the first).
    always: on in every session. tools(ctx) builds the tools; switches_on(task, chat) says
    when the set is added without being asked for; close(tools) ends what they hold open.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    prompt: ClassVar[str] = ""
    order: ClassVar[int] = 50
    always: ClassVar[bool] = False

    def tools(self, ctx: ToolContext) -> list[Tool]:
        raise NotImplementedError

    def switches_on(self, task: str, chat: bool) -> bool:
        """Whether the set is needed for this task without being asked for."""
        return False

    def configured_for(self, settings: Settings, user_id: str, org_id: str) -> bool:
        """Whether what this user or organisation configured switches the set on (MCP)."""
        return False

    def close(self, tools: list[Tool]) -> None:
        """End what this set's tools hold open; called from the thread that ran them."""


def register(cls: type[ToolSet]) -> type[ToolSet]:
    """Class decorator: add a tool set to the registry under its name."""
    existing = _SETS.get(cls.name)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ConfigError(f"two tool sets are called {cls.name!r}")
    _SETS[cls.name] = cls()
    return cls


def _load() -> None:
    """Import every module of this package, then the sets other packages declare (once, under
    a lock: a second thread waits rather than seeing the sets registered so far)."""
    global _loaded
    with _loading:
        if _loaded:
            return
        package = importlib.import_module("spud.toolsets")
        for info in pkgutil.iter_modules(package.__path__):
            if info.name != "registry" and not info.name.startswith("_"):
                importlib.import_module(f"spud.toolsets.{info.name}")
        for ep in entry_points(group=ENTRY_POINTS):
            ep.load()
        _loaded = True


def toolsets() -> dict[str, ToolSet]:
    """Every registered set by name, in tool-list order."""
    _load()
    return dict(sorted(_SETS.items(), key=lambda kv: (kv[1].order, kv[0])))


def get(name: str) -> ToolSet:
    found = toolsets().get(name)
    if found is None:
        raise ConfigError(f"unknown tool set {name!r}; known: {', '.join(toolsets())}")
    return found


def optional() -> list[ToolSet]:
    """The sets a person can switch on (the web form's boxes, the CLI's --tools)."""
    return [s for s in toolsets().values() if not s.always]


def check(names: list[str]) -> None:
    """Unknown set names are a clear error."""
    unknown = sorted(set(names) - set(toolsets()))
    if unknown:
        raise ConfigError(f"unknown tool set(s) {unknown}; known: {', '.join(toolsets())}")


def resolve(
    task: str,
    requested: list[str],
    chat: bool = False,
    owner: tuple[Settings, str, str] | None = None,
) -> list[str]:
    """The sets a session gets: the always-on ones, those asked for, those the task needs,
    and those the owner's configuration switches on (owner: settings, user id, org id).

    Small models do better with fewer tool descriptions, so sets are added only when needed.
    """
    check(requested)
    return [
        name
        for name, s in toolsets().items()
        if s.always
        or name in requested
        or s.switches_on(task, chat)
        or (owner is not None and s.configured_for(*owner))
    ]


def build(names: list[str], ctx: ToolContext) -> list[Tool]:
    """The tools of these sets, in the registry's order."""
    check(names)
    return [tool for name, s in toolsets().items() if name in names for tool in s.tools(ctx)]


def prompt(names: list[str]) -> str:
    """The prompt lines the sets add ("" when none), each set's on its own line."""
    lines = [s.prompt for name, s in toolsets().items() if name in names and s.prompt]
    return "".join("\n" + line for line in lines)


def close(names: list[str], tools: list[Tool]) -> None:
    """Let each set end what its tools hold open."""
    for name, s in toolsets().items():
        if name in names:
            s.close(tools)


def risk_of(tool: Any) -> Risk | None:
    """A tool's declared risk (read, write, execute or send), None when it declares none."""
    risk = getattr(tool, "risk", None)
    return risk if risk in RISKS else None


def help_text() -> str:
    """One line per optional set, for the CLI's --tools help."""
    return "; ".join(f"{s.name}: {s.summary}" for s in optional())
