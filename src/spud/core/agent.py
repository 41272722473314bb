"""The agent loop: one message list, one model, a few tools, every step persisted first."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from spud.core import guards
from spud.core.context import copies_elided, cut_output, fit_chat, fit_context, superseded
from spud.core.errors import (
    CheckFailed,
    Finished,
    FormatError,
    FormatErrors,
    LimitReached,
    Repetition,
    RunEnded,
)
from spud.core.messages import (
    Message,
    ModelReply,
    ToolCall,
    ToolResult,
    Trajectory,
    untrusted_context,
)
from spud.core.protocols import (
    Approver,
    Model,
    Opening,
    Store,
    TextModel,
    Tool,
    ToolSpec,
    Verifier,
)
from spud.core.run import (
    CHAT_PROMPT,
    DEADLINE,
    SYSTEM_PROMPT,
    AllowAll,
    Finish,
    Harness,
    Limits,
    RunResult,
)
from spud.core.tokens import PromptTokens
from spud.core.tooling import fixed_choices, tool_spec, validate_args, with_choices

# What callers import from here (the loop's inputs and outputs live in spud.core.run).
__all__ = [
    "CHAT_PROMPT",
    "SYSTEM_PROMPT",
    "Agent",
    "AllowAll",
    "Finish",
    "Harness",
    "Limits",
    "RunResult",
]

MAX_FORMAT_ERRORS = 3


class Agent:
    """Runs the loop: ask the model, check the call, run the tool, persist, repeat."""

    def __init__(
        self,
        model: Model,
        tools: list[Tool],
        store: Store,
        *,
        approver: Approver | None = None,
        limits: Limits | None = None,
        require_action: bool = True,
        on_message: Callable[[Message], None] | None = None,
        harness: Harness | None = None,
        verifier: Verifier | None = None,
        choices: dict[str, dict[str, list[str]]] | None = None,
        opening: Opening | None = None,
    ) -> None:
        self.model = model
        self.tools: dict[str, Tool] = {t.name: t for t in [*tools, Finish()]}
        self.specs: list[ToolSpec] = [tool_spec(t) for t in self.tools.values()]
        self.store = store
        self.approver = approver or AllowAll()
        self.limits = limits or Limits()
        self.require_action = require_action
        self.on_message = on_message or (lambda m: None)
        self.harness = harness or Harness()
        self.verifier = verifier
        self.choices = choices or {}  # {tool: {arg: values}} the run allows, grammar only
        self.opening = opening  # a playbook's first steps on a text model
        self.notes = ""  # recalled memories and worked examples, shown to the drafts too
        self.tokens = PromptTokens(model)  # the prompt's size, counted as it grows

    # -- sessions -------------------------------------------------------------------------

    def start(
        self, task: str, workspace: str, system_prompt: str = SYSTEM_PROMPT, context: str = ""
    ) -> str:
        """Create a session holding the system prompt and the task; return its id.

        Context (what was gathered for the task) follows the task in the user message.
        """
        sid = self.store.create_session(task=task, workspace=workspace, model=self.model.name)
        self._append(sid, Message(role="system", content=system_prompt))
        text = f"{task}\n\n{context}" if context else task
        self._append(sid, Message(role="user", content=text))
        return sid

    def add_user_message(self, session_id: str, text: str) -> None:
        """Continue a session with a new user turn (chat)."""
        self._append(session_id, Message(role="user", content=text))
        self.store.update_session(session_id, status="running")

    def _append(self, sid: str, message: Message) -> None:
        self.store.append(sid, message)
        self.on_message(message)

    # -- the loop -------------------------------------------------------------------------

    def run(self, session_id: str) -> RunResult:
        """Run (or resume) a session until something ends it; every ending is a RunEnded.

        On a text model, the opening (a playbook's first steps) acts through the loop before
        the model's own turn, on a turn where nothing has been done yet.
        """
        messages = Trajectory(self.store.messages(session_id))  # keeps up as it grows
        started = time.monotonic()
        result = RunResult(session_id=session_id, status="running")
        result.count(messages)
        deadline = DEADLINE.set(started + self.limits.max_seconds)
        try:
            self._run_pending(session_id, messages, result)
            turn = messages[guards.last_user_turn(messages) :]
            drafts = isinstance(self.model, TextModel) and self.model.drafts
            unused: list[str] = []  # the opening's replies after its last step
            if self.opening and drafts and not guards.acted(turn):

                def check() -> None:
                    self.limits.check(result, time.monotonic() - started)

                def act(call: ToolCall, meta: dict[str, Any]) -> Message:
                    if call.name != "finish":  # ending with what passed is not going on
                        check()
                    return self._act(session_id, messages, result, call, unheard(meta))

                def unheard(meta: dict[str, Any]) -> dict[str, Any]:
                    """The step's meta with the drafts' replies since the last step that it
                    does not hold (sent back, or a web draft's that led to nothing) under
                    "unused", for whoever reads the run."""
                    held = [meta.get("draft") or "", *meta.get("unused", [])]
                    left = [t for t in drafts.taken() if not any(t[:200] in h for h in held)]
                    return {**meta, "unused": [*meta.get("unused", []), *left]} if left else meta

                def left() -> float:
                    return self.limits.max_seconds - (time.monotonic() - started)

                drafts = DraftModel(self.model, check, self.notes, left, self.harness.draft_votes)
                drafts.by_hand = self.harness.by_hand
                drafts.samples = self.harness.code_samples
                self.opening(drafts, act)
                unused = drafts.taken()
                drafts.room_for_the_loop()
            while True:
                self.limits.check(result, time.monotonic() - started)
                self._step(session_id, messages, result, unused)
                unused = []
        except RunEnded as end:
            result.status, result.summary = end.status, end.summary + end.hint
        except Exception as exc:  # a bug or a model's failure: the stored run says so
            summary = f"the run broke: {type(exc).__name__}: {exc}"[:500]
            self.store.update_session(session_id, status="error", summary=summary)
            raise
        finally:
            DEADLINE.reset(deadline)
        result.seconds = time.monotonic() - started
        self.store.update_session(
            session_id,
            status=result.status,
            summary=result.summary,
            steps=result.steps,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )
        return result

    def _step(
        self, sid: str, messages: list[Message], result: RunResult, unused: list[str]
    ) -> None:
        turn = messages[guards.last_user_turn(messages) :]
        reserve = self.limits.max_output_tokens
        prompt = fit_context(self.model, superseded(messages), self.specs, reserve, self.tokens)
        # Until something has been done, finishing is not on offer (small models like to
        # "finish" at once); it stays described so the prompt prefix does not change.
        exclude = {"finish"} if self.require_action and not guards.acted(turn) else set()
        # After a call repeated with the same result, the next step must use another tool;
        # after a reply cut at the output cap, too (a whole file too long for one reply),
        # while another tool than finish is left.
        exclude |= guards.repeated_last_step(messages)
        cut = guards.cut_last_reply(messages)
        if any(s.name not in exclude | cut | {"finish"} for s in self.specs):
            exclude |= cut
        try:
            specs = with_choices(self.specs, self.tools, messages)  # live values, grammar only
            specs = fixed_choices(specs, self.choices)
            reply = self.model.complete(prompt, specs, frozenset(exclude))
        except FormatError as exc:
            self._format_error(sid, messages, result, exc)
            return
        msg = reply.message
        msg.meta.update(usage=reply.usage.model_dump())
        if unused:  # the opening's last replies, which led to no step of their own
            msg.meta["unused"] = unused
        if not msg.tool_calls:  # a plain-text answer from a remote model ends the turn
            msg.tool_calls = [ToolCall(name="finish", arguments={"summary": msg.content})]
            msg.meta["text_answer"] = True
        unique = {c.signature(): c for c in reversed(msg.tool_calls)}  # same call twice: once
        msg.tool_calls = [c for c in msg.tool_calls if unique[c.signature()] is c]
        self._record(sid, messages, msg)
        result.count(messages)
        self._execute_all(sid, messages, msg.tool_calls, result)

    def _act(
        self, sid: str, messages: list[Message], result: RunResult, call: ToolCall, meta: dict
    ) -> Message:
        """One step taken for the model: its call recorded and run like the model's own."""
        self._record(sid, messages, Message(role="assistant", tool_calls=[call], meta=meta))
        result.count(messages)
        self._execute_all(sid, messages, [call], result)
        return messages[-1]

    def _execute_all(
        self, sid: str, messages: list[Message], calls: list[ToolCall], result: RunResult
    ) -> None:
        """Run a step's calls in order; after one fails or ends the run, skip the rest.

        Calls that already have a result (run before a crash) are never run again; a stored
        finish ends the run again. The step is complete before the ending is raised.
        """
        results = guards.results_by_call(messages)
        ending: RunEnded | None = None
        blocked = False
        for call in calls:
            if call.id in results:
                ending = ending or guards.stored_ending(results[call.id], call)
            else:
                if blocked or ending is not None:
                    self._record(sid, messages, guards.skipped(call))
                else:
                    ending = self._execute(sid, messages, call, result)
                results[call.id] = messages[-1]
            blocked = blocked or not results[call.id].meta.get("ok")
        if ending is not None:
            raise ending

    def _run_pending(self, sid: str, messages: list[Message], result: RunResult) -> None:
        """After a crash: run the tool calls of the last step that have no result yet."""
        last = next((m for m in reversed(messages) if m.role == "assistant"), None)
        if last is None or messages[-1].role == "user":
            return
        self._execute_all(sid, messages, last.tool_calls, result)

    def _record(self, sid: str, messages: list[Message], msg: Message) -> None:
        self._append(sid, msg)
        messages.append(msg)

    def _format_error(
        self, sid: str, messages: list[Message], result: RunResult, exc: FormatError
    ) -> None:
        meta = {"kind": "format_error", "raw": exc.raw, "cut": exc.cut}
        self._record(sid, messages, Message(role="assistant", meta=meta))
        note = f"Your reply was not a valid tool call: {exc.problem}. Reply with one tool call."
        self._record(
            sid, messages, Message(role="user", content=note, meta={"kind": "format_error"})
        )
        result.steps += 1
        streak = guards.format_error_streak(messages)
        if streak >= MAX_FORMAT_ERRORS:
            raise FormatErrors(f"stopped after {streak} invalid replies in a row: {exc.problem}")

    def _execute(
        self, sid: str, messages: list[Message], call: ToolCall, result: RunResult
    ) -> RunEnded | None:
        """Run one call, record its result, and return how it ends the run (if it does)."""
        tool = self.tools.get(call.name)
        meta: dict[str, Any] = {}
        ending: RunEnded | None = None
        if tool is None:
            names = ", ".join(self.tools)
            res = ToolResult(output=f"Unknown tool {call.name!r}. Available: {names}.", ok=False)
        elif tool.name == "finish":
            res, ending = self._finish(messages, call, result, meta)
        else:
            res = self._run_tool(tool, call, messages, meta)
        output = cut_output(res.output, self.limits.max_tool_output_chars)
        if res.ok and "diff" in res.data and self.harness.check_after_change and self._verifying:
            note = self.verifier.after_change()
            output += f"\n\n{note}" if note else ""
        result_hash = guards.digest(res.output)
        repeats = guards.repeats(messages, call, result_hash)
        if repeats >= guards.REPEAT_WARN:
            meta["repeated"] = repeats
        output = guards.marked(output, res, repeats)
        meta.update(ok=res.ok, result_hash=result_hash, **res.data)
        if messages[-1].role == "assistant" and messages[-1].meta.get("scratch"):
            meta["scratch"] = True  # a playbook's side computation: its failure is not the task's
        tool_msg = Message(
            role="tool",
            name=call.name,
            tool_call_id=call.id,
            content=output,
            untrusted=res.untrusted,
            meta=meta,
        )
        self._record(sid, messages, tool_msg)
        # a playbook's own steps (a draft, its undo) are bounded by its rounds, not by this stop
        drafted = messages[-2].role == "assistant" and messages[-2].meta.get("kind") == "draft"
        if ending is None and repeats >= guards.REPEAT_STOP and not drafted:
            ending = Repetition(
                f"stopped: {call.name} repeated {repeats} times with the same result"
            )
        if ending is None and meta.get("kind") == "no_action":
            ending = guards.no_action()
        return ending

    def _finish(
        self, messages: list[Message], call: ToolCall, result: RunResult, meta: dict[str, Any]
    ) -> tuple[ToolResult, RunEnded | None]:
        """Finish if the guards and the task's checks allow it; otherwise say why not."""
        tool = self.tools["finish"]
        try:
            args = validate_args(tool, call.arguments)
        except ValueError as exc:
            return ToolResult(output=f"{exc}. Fix the arguments and call again.", ok=False), None
        turn = messages[guards.last_user_turn(messages) :]
        refusal = guards.finish_refusal(turn, self.require_action, self.harness.self_check)
        if refusal is not None:
            return refusal, None
        summary = str(call.arguments.get("summary", ""))
        if not self._verifying:
            meta["kind"] = "finish"
            return tool.run(args), Finished(summary)
        checks = self.verifier.check() if self.verifier else []
        result.checks = checks
        meta["checks"] = [c.model_dump() for c in checks]
        note = guards.checked_note(checks)
        if all(c.passed for c in checks):
            meta["kind"] = "finish"
            return tool.run(args), Finished(f"{summary} {note}".strip())
        if guards.repairs_used(turn) < self.harness.check_repairs:
            return guards.check_refusal(checks), None
        meta["kind"] = "finish_unchecked"
        return (
            ToolResult(output="Stopped: the checks still fail.", ok=False),
            CheckFailed(f"{summary} {note}".strip()),
        )

    def _run_tool(
        self, tool: Tool, call: ToolCall, messages: list[Message], meta: dict[str, Any]
    ) -> ToolResult:
        try:
            args = validate_args(tool, call.arguments)
        except ValueError as exc:
            return ToolResult(output=f"{exc}. Fix the arguments and call again.", ok=False)
        if (copied := copies_elided(call.arguments)) is not None:
            return ToolResult(output=copied, ok=False)
        if self.harness.rerun_guard:
            refusal = guards.rerun_refusal(messages[guards.last_user_turn(messages) :], call)
            if refusal is not None:
                return refusal
        approval = self.approver.decide(call, untrusted_context(messages))
        meta["approval"] = approval.decision
        if approval.decision != "allow":
            return ToolResult(output=f"Not run: {approval.reason}", ok=False)
        try:
            return tool.run(args)
        except Exception as exc:  # a tool bug must not kill the run: report it to the model
            return ToolResult(output=f"{tool.name} failed: {type(exc).__name__}: {exc}", ok=False)

    @property
    def _verifying(self) -> bool:
        return self.verifier is not None and self.harness.verify


class DraftModel:
    """The model as an opening sees it: the run's limits are checked before every draft (a run
    of drafts cannot go on past its time), and what was recalled for the task (memories, worked
    examples) follows each draft's system message, as it follows the loop's.

    A draft is also cut to the tokens the time left allows at the pace of the drafts so far
    (a 1.5B's 2,048-token script begun near the end took a 240 s run to 408 s)."""

    drafts = True
    MIN_TOKENS = 64

    def __init__(
        self,
        model: TextModel,
        check: Callable[[], None],
        notes: str = "",
        left: Callable[[], float] | None = None,
        votes: int = 1,
    ) -> None:
        self.model, self.check, self.notes, self.left = model, check, notes, left
        self.votes = votes  # passing drafts that vote on the outputs (the harness's draft_votes)
        self.by_hand = False  # script outputs held against their heads worked by hand
        self.samples = 1  # replies tried against the tests in a code round (the harness's)
        self.tokens, self.seconds = 0, 0.0  # the drafts' output so far, and their time
        self.replies = 0
        self.since: list[str] = []  # the replies' texts since the last step took them

    def chat(
        self,
        messages: list[Message],
        max_tokens: int = 2048,
        temperature: float | None = None,
        until_block: bool = False,
    ) -> ModelReply:
        self.check()
        if self.notes.strip() and messages and messages[0].role == "system":
            system = messages[0].model_copy(update={"content": messages[0].content + self.notes})
            messages = [system, *messages[1:]]
        if self.left is not None and self.tokens and self.seconds > 0:
            allowed = int(self.left() * self.tokens / self.seconds)
            max_tokens = max(self.MIN_TOKENS, min(max_tokens, allowed))
        if isinstance(self.model, Model):
            messages = fit_chat(self.model, messages, max_tokens)
        reply = self.model.chat(
            messages, max_tokens=max_tokens, temperature=temperature, until_block=until_block
        )
        self.tokens += reply.usage.completion_tokens
        self.seconds += reply.usage.seconds
        self.replies += 1
        self.since.append(reply.message.content.strip())
        return reply

    def taken(self) -> list[str]:
        """The replies' texts since the last call, and none from now on."""
        since, self.since = self.since, []
        return [t for t in since if t]

    def room_for_the_loop(self) -> None:
        """Raise LimitReached when the time left is under two drafts' time: the loop's first
        step reads the whole run so far afresh and cannot end in it (a 1.5B's took 120-180 s
        after code drafts that ended 15-120 s before the limit, and ended each run past it)."""
        if self.left is None or not self.replies:
            return
        pace, left = self.seconds / self.replies, self.left()
        if left < 2 * pace:
            raise LimitReached(
                "time",
                f"{left:.0f}s left after the drafts, less than two drafts' time "
                f"({pace:.0f}s each): not enough for the loop's first step",
            )
