"""Commands whose modules load only when one of them runs, so `spud --help` starts fast."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # typer carries its own click; the separate click package is not loaded
    from typer import _click as click

# name: ("module:attribute" of a Typer app or a command function, its one-line help)
Lazy = dict[str, tuple[str, str]]


class Group(TyperGroup):
    """A Typer group whose flags left unset (--help, the completion options) read as False.

    typer 0.29 passes a flag's unset value, None, through a pydantic TypeAdapter, which
    imports pydantic (about 0.1 s) before any subcommand runs, `spud run --help` among them;
    a bool value skips that.
    """

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.default is None:
                param.default = False
        return params


def lazy_group(commands: Lazy) -> type[TyperGroup]:
    """A Typer group class that also offers these commands, each imported when it runs.

    Help listings show the one-line help from the table without importing anything.
    """

    class LazyGroup(Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return [*super().list_commands(ctx), *(n for n in commands if n not in self.commands)]

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            if name in self.commands or name not in commands:
                return super().get_command(ctx, name)
            return TyperCommand(name, help=commands[name][1])  # for listings only

        def resolve_command(
            self, ctx: click.Context, args: list[str]
        ) -> tuple[str | None, click.Command | None, list[str]]:
            name, command, rest = super().resolve_command(ctx, args)
            if name in commands and name not in self.commands:
                command = self.commands[name] = load(name, commands[name][0])
            return name, command, rest

    return LazyGroup


class ToolSetsHelp(TyperCommand):
    """A command whose --tools help lists the optional tool sets, read only when it is shown
    (listing them imports every tool set)."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from spud import toolsets

        for param in self.params:
            if param.name == "tools":
                param.help = f"Extra tool sets, comma-separated. {toolsets.help_text()}."
        super().format_help(ctx, formatter)


def load(name: str, target: str) -> click.Command:
    """The click command of a Typer app or a command function named "module:attribute"."""
    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        command = typer.main.get_group(found)
    else:
        app = typer.Typer()
        app.command(name)(found)
        command = typer.main.get_command(app)
    command.name = name
    return command
