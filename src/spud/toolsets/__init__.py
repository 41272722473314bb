"""Tool sets as plugins: one module per set registers itself; sessions, CLI and web read them."""

from spud.toolsets.registry import (
    RISKS,
    Risk,
    ToolContext,
    ToolSet,
    build,
    check,
    close,
    get,
    help_text,
    optional,
    prompt,
    register,
    resolve,
    risk_of,
    toolsets,
)

__all__ = [
    "RISKS",
    "Risk",
    "ToolContext",
    "ToolSet",
    "build",
    "check",
    "close",
    "get",
    "help_text",
    "optional",
    "prompt",
    "register",
    "resolve",
    "risk_of",
    "toolsets",
]
