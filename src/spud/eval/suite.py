"""Suites as data: TOML files of tasks (files, a prompt, checks) plus checker functions."""

from __future__ import annotations

import importlib.util
import random
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from spud.core.errors import ConfigError

BUILTIN = Path(__file__).parent / "suites"
SPLITS = ("dev", "heldout", "all")
HELDOUT_MARK = " (held-out)"  # appended to a held-out task's category when splits run together


class Task(BaseModel):
    """One task: what the workspace holds, what to ask, and how to check the outcome."""

    id: str
    category: str
    prompt: str
    files: dict[str, str] = Field(default_factory=dict)
    sheets: dict[str, dict[str, list[list[Any]]]] = Field(default_factory=dict)
    site: dict[str, str] = Field(default_factory=dict)  # pages served at {site} during the run
    tools: list[str] = Field(default_factory=list)
    max_steps: int = 15
    checks: list[dict[str, Any]] = Field(min_length=1)


class Suite(BaseModel):
    """A named list of tasks and the checker functions they may use."""

    name: str
    tasks: list[Task]
    checkers: dict[str, Callable[..., str | None]] = Field(default_factory=dict)

    def subset(self, limit: int | None, seed: int = 0, only: list[str] | None = None) -> Suite:
        """Tasks named in only, or a fixed-seed sample of limit tasks (in suite order)."""
        tasks = self.tasks
        if only:
            unknown = set(only) - {t.id for t in tasks}
            if unknown:
                raise ConfigError(f"no task(s) {sorted(unknown)} in suite {self.name}")
            tasks = [t for t in tasks if t.id in only]
        if limit is not None and limit < len(tasks):
            keep = set(random.Random(seed).sample(range(len(tasks)), limit))
            tasks = [t for i, t in enumerate(tasks) if i in keep]
        return self.model_copy(update={"tasks": tasks})


def builtin_suites() -> list[str]:
    return sorted(p.name for p in BUILTIN.iterdir() if p.is_dir()) + ["bfcl"]


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name, or a folder (or one .toml file) of the user's own."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        path = BUILTIN / name_or_path
    if not path.exists():
        raise ConfigError(
            f"no suite {name_or_path!r}: give a folder of .toml task files or one of "
            f"{', '.join(builtin_suites())}"
        )
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"suite folder {path} holds no .toml task files")
    tasks: list[Task] = []
    for file in files:
        tasks += _tasks(file)
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise ConfigError(f"task id {t.id!r} appears twice in suite {path.name}")
        seen.add(t.id)
    folder = path if path.is_dir() else path.parent
    from spud.eval.checks import CHECKERS

    checkers = {**CHECKERS, **_user_checkers(folder / "checks.py")}
    for t in tasks:
        for check in t.checks:
            if check.get("fn") not in checkers:
                raise ConfigError(
                    f"task {t.id}: unknown checker {check.get('fn')!r}; "
                    f"known: {', '.join(sorted(checkers))}"
                )
    return Suite(name=path.stem if path.is_file() else path.name, tasks=tasks, checkers=checkers)


def load_split(name_or_path: str, split: str = "dev") -> Suite:
    """A suite's dev split (NAME), its held-out split (NAME-heldout), or all of both.

    With "all", held-out tasks keep their ids and get HELDOUT_MARK after their category, so
    every table and summary shows the two splits apart.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if split == "dev":
        return load_suite(name_or_path)
    held_name = name_or_path.rstrip("/") + "-heldout"
    if not Path(held_name).expanduser().exists() and not (BUILTIN / held_name).exists():
        raise ConfigError(f"suite {name_or_path!r} has no held-out split (no {held_name!r})")
    held = load_suite(held_name)
    if split == "heldout":
        return held
    dev = load_suite(name_or_path)
    both = {t.id for t in dev.tasks} & {t.id for t in held.tasks}
    if both:
        raise ConfigError(f"task ids in both splits of {dev.name}: {sorted(both)}")
    clash = [
        k
        for k in held.checkers.keys() & dev.checkers.keys()
        if held.checkers[k] is not dev.checkers[k]
    ]
    if clash:
        raise ConfigError(f"both splits of {dev.name} define the checker(s) {sorted(clash)}")
    marked = [t.model_copy(update={"category": t.category + HELDOUT_MARK}) for t in held.tasks]
    return Suite(
        name=f"{dev.name}+heldout",
        tasks=dev.tasks + marked,
        checkers={**held.checkers, **dev.checkers},
    )


def _tasks(file: Path) -> list[Task]:
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read suite file {file}: {exc}") from None
    out = []
    for i, raw in enumerate(data.get("task", [])):
        try:
            out.append(Task.model_validate({"category": file.stem, **raw}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{file.name}, task {i + 1}: {problems}") from None
    return out


def _user_checkers(path: Path) -> dict[str, Callable[..., str | None]]:
    """Public functions of a suite's checks.py (each returns None to pass or why it failed)."""
    if not path.is_file():
        return {}
    spec = importlib.util.spec_from_file_location(f"spud_suite_checks_{abs(hash(path))}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    return {
        k: v
        for k, v in vars(module).items()
        if callable(v) and not k.startswith("_") and getattr(v, "__module__", "") == module.__name__
    }
