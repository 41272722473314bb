"""Keeping the prompt inside the context window: elide old outputs, cut long ones, say so."""

from __future__ import annotations

from spud.core.errors import ContextOverflow
from spud.core.messages import Message
from spud.core.protocols import Model, ToolSpec
from spud.core.tokens import PromptTokens

ELIDED_KEEP = 120  # characters kept of an older call's long argument


def cut_output(output: str, cap: int) -> str:
    """Keep the head and tail of a long tool output, with a note on how to read the rest."""
    if len(output) <= cap:
        return output
    head, tail = output[: cap * 3 // 4], output[-cap // 4 :]
    return (
        f"{head}\n[output cut: {len(output)} characters, showing the first {len(head)} "
        f"and the last {len(tail)}. Read the rest with read_file and start_line/end_line, "
        f"or narrow the command with grep, head or tail]\n{tail}"
    )


def fit_context(
    model: Model,
    messages: list[Message],
    specs: list[ToolSpec],
    reserve: int,
    tokens: PromptTokens | None = None,
) -> list[Message]:
    """The prompt to send: older tool outputs elided (oldest first) until it fits.

    The stored list is never changed. If even the elided prompt does not fit, the run is
    refused with ContextOverflow rather than silently truncated. tokens, kept by the caller
    from step to step, spares re-counting the whole list while it fits.
    """
    budget = model.context_window - reserve
    prompt = list(messages)
    if tokens is not None and tokens.fits(messages, specs, budget):
        return prompt
    if model.count_tokens(prompt, specs) <= budget:
        return prompt
    older_outputs = [i for i, m in enumerate(prompt) if m.role == "tool"][:-1]
    for i in older_outputs:
        old = prompt[i]
        marker = (
            f"[elided: an older {old.name} output of {len(old.content)} characters was "
            "removed to fit the context window; call the tool again if you need it]"
        )
        prompt[i] = old.model_copy(update={"content": marker, "meta": {**old.meta, "elided": True}})
        if model.count_tokens(prompt, specs) <= budget:
            return prompt
    # Then the long arguments of older calls (five drafted scripts of 2,000 characters each
    # overflowed a 1.5B's 8k window), oldest first; the latest call stays whole.
    calls = [i for i, m in enumerate(prompt) if m.role == "assistant" and m.tool_calls][:-1]
    for i in calls:
        old = prompt[i]
        short = [c.model_copy(update={"arguments": _elided(c.arguments)}) for c in old.tool_calls]
        if short == old.tool_calls:
            continue
        update = {"tool_calls": short, "meta": {**old.meta, "elided": True}}
        prompt[i] = old.model_copy(update=update)
        if model.count_tokens(prompt, specs) <= budget:
            return prompt
    used = model.count_tokens(prompt, specs)
    raise ContextOverflow(
        f"the conversation needs {used} tokens but {model.name} has room for {budget} "
        f"(context window {model.context_window}); start a new session or use a model "
        "with a larger context window"
    )


def _elided(arguments: dict) -> dict:
    """A call's arguments with each long string cut to its start and a note."""
    return {
        k: f"{v[:ELIDED_KEEP]}[... {len(v)} characters elided to fit the context window]"
        if isinstance(v, str) and len(v) > 2 * ELIDED_KEEP
        else v
        for k, v in arguments.items()
    }
