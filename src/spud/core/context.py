"""Keeping the prompt inside the context window: elide old outputs, cut long ones, say so."""

from __future__ import annotations

import re

from spud.core.errors import ContextOverflow
from spud.core.messages import Message
from spud.core.protocols import Model, ToolSpec
from spud.core.tokens import PromptTokens

ELIDED_KEEP = 120  # characters kept of an older call's long argument
ELIDED_MARK = re.compile(r"\[\.\.\. \d+ characters elided to fit the context window\]")
# The exception line of a Python traceback (the error, without the values after it).
RAISED_LINE = re.compile(r"^(?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)\b.*$", re.MULTILINE)


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
    if (fitted := _without_old_rounds(model, prompt, specs, budget)) is not None:
        return fitted
    used = model.count_tokens(prompt, specs)
    raise ContextOverflow(
        f"the conversation needs {used} tokens but {model.name} has room for {budget} "
        f"(context window {model.context_window}); start a new session or use a model "
        "with a larger context window"
    )


def fit_chat(model: Model, messages: list[Message], max_tokens: int) -> list[Message]:
    """A draft's chat that fits the context window with room for its reply: its oldest
    exchanges after the first request left out, as many as it takes (ten script rounds of a
    1.5B, each told its failure, asked for 8,310 tokens of an 8,192 window and ended the whole
    run in a ValueError); ContextOverflow when even the first request and the last do not fit."""
    budget = model.context_window - max_tokens
    head, rest = messages[:2], messages[2:]
    while model.count_tokens([*head, *rest], []) > budget:
        if len(rest) <= 1:
            raise ContextOverflow(
                f"a draft's request needs more than the {budget} tokens {model.name} has room "
                f"for (context window {model.context_window}, {max_tokens} kept for the reply)"
            )
        rest = rest[2:] if len(rest) > 2 else rest[-1:]  # an exchange: a reply and its answer
    return [*head, *rest]


def _without_old_rounds(
    model: Model, prompt: list[Message], specs: list[ToolSpec], budget: int
) -> list[Message] | None:
    """The prompt without its oldest draft steps and their results, as many as it takes to
    fit (21 code rounds of a 1.5B, and the undos between them, overflowed its 8k window even
    shortened), with a note where they were; None if even that does not fit. Their code is
    in the files, and the latest round stays."""
    steps = [i for i, m in enumerate(prompt) if m.role == "assistant" and m.kind == "draft"]
    left_out: set[int] = set()
    for n, i in enumerate(steps[:-1], start=1):
        ids = {c.id for c in prompt[i].tool_calls}
        left_out |= {i} | {
            j for j, m in enumerate(prompt) if m.role == "tool" and m.tool_call_id in ids
        }
        note = Message(
            role="user",
            content=f"[{n} earlier draft steps left out to fit the context window; their "
            "changes are in the files]",
            meta={"elided": True},
        )
        first = min(left_out)
        kept = [m for j, m in enumerate(prompt) if j not in left_out and j > first]
        fitted = [*prompt[:first], note, *kept]
        if model.count_tokens(fitted, specs) <= budget:
            return fitted
    return None


def _elided(arguments: dict) -> dict:
    """A call's arguments with each long string cut to its start and a note."""
    return {
        k: f"{v[:ELIDED_KEEP]}[... {len(v)} characters elided to fit the context window]"
        if isinstance(v, str) and len(v) > 2 * ELIDED_KEEP
        else v
        for k, v in arguments.items()
    }


def copies_elided(arguments: dict) -> str | None:
    """A refusal for a call that copies an elided argument's mark (a 1.5B re-ran an earlier
    script whose middle read `[... 2558 characters elided ...]`, three times); else None."""
    for value in arguments.values():
        if isinstance(value, str) and (mark := ELIDED_MARK.search(value)):
            return (
                f"Not run: it holds {mark[0]!r}, the mark where an earlier call was shortened "
                "in your view of this run. That text is not code. Write what to run in full: "
                "a long script to a file with write_file, then run the file."
            )
    return None


def superseded(messages: list[Message]) -> list[Message]:
    """The loop's view of a run's drafts: the calls of every round before the last shown by
    their start, and their script runs by the error or last line (five failed script rounds
    made a 1.5B's first loop step read 5,850 prompt tokens, 187-247 s on two cores). What came
    before the first round (pages read, files gathered) stays whole, as does the stored run.

    A round begins at a draft message holding the model's reply (meta "draft")."""
    starts = [i for i, m in enumerate(messages) if m.kind == "draft" and "draft" in m.meta]
    if len(starts) < 2:
        return messages
    earlier = range(starts[0], starts[-1])
    runs = {
        c.id
        for i in earlier
        if messages[i].role == "assistant"
        for c in messages[i].tool_calls
        if c.name == "bash"
    }
    prompt = list(messages)
    for i in earlier:
        m = messages[i]
        if m.role == "assistant" and m.kind == "draft":
            short = [c.model_copy(update={"arguments": _elided(c.arguments)}) for c in m.tool_calls]
            prompt[i] = m.model_copy(update={"tool_calls": short})
        elif m.role == "tool" and m.tool_call_id in runs:
            note = f"[an earlier draft round's run, shortened: {_gist(m.content)}]"
            prompt[i] = m.model_copy(update={"content": note})
    return prompt


def _gist(output: str) -> str:
    """A run's error line, else its last line, short."""
    errors = RAISED_LINE.findall(output)
    lines = output.strip().splitlines()
    return (errors[-1] if errors else lines[-1] if lines else "no output")[: 2 * ELIDED_KEEP]
