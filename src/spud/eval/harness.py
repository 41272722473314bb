"""The configurations an eval compares: Spud's harness, calls only, or the raw model."""

from __future__ import annotations

from spud.config import Settings
from spud.core.errors import ConfigError
from spud.core.protocols import Model
from spud.core.run import Harness
from spud.models.loader import load_model
from spud.models.local import MAX_CALLS_PER_STEP, LocalModel

HARNESSES = (
    "spud",
    "spud-noplaybook",
    "spud-nocheck",
    "spud-nodraft",
    "spud-hand",
    "spud-sample",
    "spud-draft",
    "spud-raw",
    "spud-free",
    "spud-v1",
    "spud-check",
    "spud-calls",
    "raw",
)


def model_for(name: str, harness: str, settings: Settings, answers: bool = True) -> Model:
    """Load a model for a harness: "raw" wraps llama.cpp's plain chat completion.

    With answers, Spud's grammar also allows a plain-text answer (BFCL's irrelevance cases
    need one); "spud-calls" always forces tool calls; "spud-check" is "spud" plus the agent's
    opt-in self-check and rerun guard (see `agent_harness`).
    """
    if harness not in HARNESSES:
        raise ConfigError(f"unknown harness {harness!r}; known: {', '.join(HARNESSES)}")
    model = load_model(name, settings)
    if not isinstance(model, LocalModel):
        if harness == "raw":
            raise ConfigError("the raw harness needs an embedded (GGUF) model")
        return model
    if harness == "raw":
        from spud.eval.raw import RawChatModel

        return RawChatModel(model)
    model.allow_answer = answers and harness in ("spud", "spud-check", "spud-raw", "spud-v1")
    if answers:  # BFCL: its parallel cases want several calls in one reply
        model.max_calls = MAX_CALLS_PER_STEP
    # "spud-raw": file text after the call header (fenced block, SEARCH/REPLACE), to compare
    # with the default, file text inside the JSON arguments
    model.edit_format = "raw" if harness == "spud-raw" else "json"
    # "spud-free": no grammar-only bounds or live choices on the arguments (lever 2 off)
    model.narrow_args = harness != "spud-free"
    # "spud-nodraft": playbooks without their plain-text drafts (the model acts by tool calls);
    # "spud-draft": drafts even for a model whose registry entry has them off
    model.drafts = harness == "spud-draft" or (
        model.drafts and harness not in ("spud-nodraft", "spud-v1")
    )
    return model


def agent_harness(harness: str) -> Harness:
    """The agent loop's helps for a harness name: each "spud-no…" switches one lever off.

    "spud-v1" is the harness as it was before playbooks, checks and raw-text edits.
    """
    on = harness == "spud-check"
    checks = harness not in ("spud-nocheck", "spud-v1", "raw")
    hand = harness == "spud-hand"  # on at effort medium and high
    return Harness(
        self_check=on,
        rerun_guard=on,
        verify=checks,
        check_after_change=checks,
        by_hand=hand,
        code_samples=3 if harness == "spud-sample" else 1,  # on at effort medium and high
    )


def playbook_for(harness: str) -> str | None:
    """The playbook setting for a harness name: chosen from the task, or "none"."""
    return "none" if harness in ("spud-noplaybook", "spud-v1", "raw") else None
