"""The agent loop driven by the replay model: limits, feedback, repetition, context, resume."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from spud.core.agent import Agent, Limits
from spud.core.messages import ToolResult
from spud.models.replay import ReplayModel


class Echo:
    name = "echo"
    description = "Echo the text back."

    class Args(BaseModel):
        text: str

    def __init__(self) -> None:
        self.seen: list[str] = []

    def run(self, args: Args) -> ToolResult:
        self.seen.append(args.text)
        return ToolResult(output=f"echo: {args.text}")


class Big:
    name = "big"
    description = "Return a long output."

    class Args(BaseModel):
        size: int

    def run(self, args: Args) -> ToolResult:
        return ToolResult(output="".join(f"line {i}\n" for i in range(args.size)))


def call(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


def finish(summary: str = "done") -> dict:
    return call("finish", summary=summary)


def make(replies: list[dict], store, tools=None, **limits) -> tuple[Agent, str]:
    agent = Agent(ReplayModel(replies), tools or [Echo()], store, limits=Limits(**limits))
    return agent, agent.start("say hi", "/tmp")


def test_finishes_and_persists_every_step(store):
    echo = Echo()
    agent, sid = make([call("echo", text="hi"), finish("said hi")], store, [echo])
    result = agent.run(sid)
    assert result.status == "finished" and result.summary == "said hi"
    assert echo.seen == ["hi"]
    roles = [m.role for m in store.messages(sid)]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool"]
    info = store.get_session(sid)
    assert info.status == "finished" and info.steps == 2


def test_a_model_that_breaks_leaves_the_run_stored_as_an_error(store):
    class Breaks(ReplayModel):
        def complete(self, messages, tools, exclude=frozenset()):
            if sum(m.role == "assistant" for m in messages):
                raise ValueError("Requested tokens (8310) exceed context window of 8192")
            return super().complete(messages, tools, exclude)

    echo = Echo()
    agent = Agent(Breaks([call("echo", text="hi")]), [echo], store)
    sid = agent.start("say hi", "/tmp")
    with pytest.raises(ValueError, match="8310"):
        agent.run(sid)
    info = store.get_session(sid)
    assert info.status == "error" and "ValueError: Requested tokens (8310)" in info.summary
    assert [m.role for m in store.messages(sid)][-2:] == ["assistant", "tool"]  # kept
    assert echo.seen == ["hi"]


def test_step_limit_stops_with_status(store):
    agent, sid = make([call("echo", text=str(i)) for i in range(10)], store, max_steps=3)
    result = agent.run(sid)
    assert result.status == "limit:step"
    assert "3 of 3 steps" in result.summary
    assert store.get_session(sid).status == "limit:step"


def test_token_and_cost_limits(store):
    agent, sid = make([call("echo", text=str(i)) for i in range(10)], store, max_tokens=50)
    assert agent.run(sid).status == "limit:token"
    replies = [{**call("echo", text=str(i)), "cost_usd": 0.5} for i in range(10)]
    agent, sid = make(replies, store, max_cost_usd=1.0)
    assert agent.run(sid).status == "limit:cost"


def test_time_limit(store):
    agent, sid = make([call("echo", text="x")], store, max_seconds=0)
    assert agent.run(sid).status == "limit:time"


def test_a_reply_still_being_generated_when_the_time_is_up_ends_the_run_there(store):
    import time

    from spud.core.run import DEADLINE, past_deadline

    decoded: list[int] = []
    model = ReplayModel([call("echo", text="x")] * 5)
    orig = model.complete

    def slow(messages, tools, exclude=frozenset()):  # a local model checks at each decode
        for n in range(400):
            past_deadline()
            decoded.append(n)
            time.sleep(0.01)
        return orig(messages, tools, exclude)

    model.complete = slow  # type: ignore[method-assign]
    agent = Agent(model, [Echo()], store, limits=Limits(max_seconds=0.3))
    result = agent.run(agent.start("task", "/tmp"))
    assert result.status == "limit:time" and "during the model's reply" in result.summary
    assert len(decoded) < 400  # stopped inside the first reply, not after it
    assert DEADLINE.get() is None  # outside a run, nothing is cut
    past_deadline()


def test_format_error_is_fed_back_and_run_recovers(store):
    agent, sid = make(
        [{"text": "```json\n{not json}\n```"}, call("echo", text="ok"), finish()], store
    )
    result = agent.run(sid)
    assert result.status == "finished"
    msgs = store.messages(sid)
    notes = [m for m in msgs if m.role == "user" and m.kind == "format_error"]
    assert len(notes) == 1 and "not valid JSON" in notes[0].content
    assert "<" not in notes[0].content.replace("<tool_call>", "")  # no placeholder text


def test_fenced_json_call_is_accepted(store):
    echo = Echo()
    text = '```json\n{"name": "echo", "arguments": {"text": "fenced"}}\n```'
    agent, sid = make([{"text": text}, finish()], store, [echo])
    assert agent.run(sid).status == "finished"
    assert echo.seen == ["fenced"]


def test_three_format_errors_in_a_row_stop(store):
    agent, sid = make([{"text": "nope"}] * 5, store)
    result = agent.run(sid)
    assert result.status == "format_errors"
    assert "3 invalid replies" in result.summary


def test_unknown_tool_and_bad_arguments_get_clear_results(store):
    agent, sid = make(
        [call("rm_everything"), call("echo", txt="typo"), call("echo", text="x"), finish()], store
    )
    assert agent.run(sid).status == "finished"
    tools = [m.content for m in store.messages(sid) if m.role == "tool"]
    assert "Unknown tool 'rm_everything'" in tools[0]
    assert "invalid arguments for echo" in tools[1] and "text" in tools[1]


def test_a_call_copying_an_elided_arguments_mark_is_not_run(store):
    echo = Echo()
    copied = "import os\nfrom datetime [... 2558 characters elided to fit the context window]"
    agent, sid = make(
        [call("echo", text=copied), call("echo", text="print(1)"), finish()], store, [echo]
    )
    assert agent.run(sid).status == "finished"
    assert echo.seen == ["print(1)"]
    refused = next(m for m in store.messages(sid) if m.role == "tool")
    assert refused.content.startswith("Not run: it holds '[... 2558 characters elided")
    assert "not code" in refused.content and not refused.meta["ok"]


def test_repetition_is_flagged_then_stopped(store):
    agent, sid = make([call("echo", text="same")] * 6, store)
    result = agent.run(sid)
    assert result.status == "repetition"
    outputs = [m.content for m in store.messages(sid) if m.role == "tool"]
    assert len(outputs) == 3
    assert "do something different" in outputs[1]


def test_same_call_twice_in_one_step_runs_once(store):
    echo = Echo()
    twice = {"calls": [{"name": "echo", "arguments": {"text": "a"}}] * 3}
    agent, sid = make([twice, finish()], store, [echo])
    assert agent.run(sid).status == "finished"
    assert echo.seen == ["a"]


class Clock:
    name = "clock"
    description = "Run the tests (reports a timing that changes every run)."

    class Args(BaseModel):
        pass

    def __init__(self) -> None:
        self.runs = 0

    def run(self, args: Args) -> ToolResult:
        self.runs += 1
        return ToolResult(output=f"1 failed in 0.{self.runs}s")


def test_repetition_ignores_changing_numbers(store):
    clock = Clock()
    agent, sid = make([call("clock")] * 6, store, [clock])
    assert agent.run(sid).status == "repetition"
    assert clock.runs == 3


class Crash(Clock):
    name = "crash"
    description = "Run a script that crashes (its error shows an object's address)."

    def run(self, args: Clock.Args) -> ToolResult:
        self.runs += 1
        address = hex(id(object()) + self.runs * 0xA0)  # a new address each run
        return ToolResult(output=f"NameError: x\n  wb = <Workbook object at {address}>", ok=False)


def test_repetition_ignores_object_addresses(store):
    crash = Crash()
    agent, sid = make([call("crash")] * 6, store, [crash])
    assert agent.run(sid).status == "repetition"
    assert crash.runs == 3


def test_repetition_is_caught_for_long_outputs_too(store):
    agent, sid = make([call("big", size=5000)] * 5, store, [Big()], max_tool_output_chars=500)
    assert agent.run(sid).status == "repetition"


def test_finish_without_acting_is_refused_once(store):
    agent, sid = make([finish("lied"), call("echo", text="work"), finish("real")], store)
    result = agent.run(sid)
    assert result.status == "finished" and result.summary == "real"
    first = [m for m in store.messages(sid) if m.role == "tool"][0]
    assert "no tool has been used yet" in first.content


def test_finishing_twice_without_acting_is_not_success(store):
    agent, sid = make([finish("did it"), finish("really did it")], store)
    result = agent.run(sid)
    assert result.status == "no_action"
    assert store.get_session(sid).status == "no_action"


def test_finish_is_not_offered_until_something_ran(store):
    offered: list[frozenset] = []
    model = ReplayModel([call("echo", text="x"), finish()])
    orig = model.complete

    def spy(messages, tools, exclude=frozenset()):
        offered.append(exclude)
        return orig(messages, tools, exclude)

    model.complete = spy  # type: ignore[method-assign]
    agent = Agent(model, [Echo()], store)
    agent.run(agent.start("task", "/tmp"))
    assert offered == [frozenset({"finish"}), frozenset()]


def test_a_reply_cut_at_the_cap_takes_its_tool_off_the_next_reply_while_another_is_left(store):
    from spud.core.errors import FormatError

    def run(tools: list) -> list[frozenset]:
        offered: list[frozenset] = []
        model = ReplayModel([call("echo", text="x"), finish()])
        orig = model.complete

        def spy(messages, specs, exclude=frozenset()):
            offered.append(exclude)
            if len(offered) == 1:  # a whole file that did not fit in one reply
                raise FormatError("the reply was cut", '{"name": "echo", "arguments": {"te', True)
            return orig(messages, specs, exclude)

        model.complete = spy  # type: ignore[method-assign]
        agent = Agent(model, tools, store)
        agent.run(agent.start("task", "/tmp"))
        return offered

    assert run([Echo(), Big()])[1] == {"finish", "echo"}  # echo again would be cut again
    assert run([Echo()])[1] == {"finish"}  # the only tool stays on offer


class Flaky:
    name = "tests"
    description = "Run the tests."

    class Args(BaseModel):
        pass

    def __init__(self, results: list[bool]) -> None:
        self.results = results

    def run(self, args: Args) -> ToolResult:
        ok = self.results.pop(0)
        return ToolResult(output="passed" if ok else "1 failed", ok=ok)


def test_finish_right_after_a_failure_is_refused_once(store):
    agent, sid = make(
        [call("tests"), finish("all good"), finish("cannot fix it")], store, [Flaky([False])]
    )
    result = agent.run(sid)
    assert result.status == "finished" and result.summary == "cannot fix it"
    refusal = [m for m in store.messages(sid) if m.role == "tool"][1]
    assert "the last tests call failed" in refusal.content

    agent, sid = make(
        [call("tests"), call("tests"), finish("fixed")], store, [Flaky([False, True])]
    )
    result = agent.run(sid)
    assert result.status == "finished" and result.summary == "fixed"
    assert all("Not finished" not in m.content for m in store.messages(sid))


def test_long_output_is_cut_with_a_note(store):
    agent, sid = make(
        [call("big", size=5000), finish()], store, [Big()], max_tool_output_chars=2000
    )
    agent.run(sid)
    out = [m for m in store.messages(sid) if m.role == "tool"][0].content
    assert "[output cut:" in out and "start_line" in out
    assert len(out) < 2600 and "line 4999" in out


def test_old_outputs_are_elided_to_fit_then_overflow_refused(store):
    model = ReplayModel(
        [call("big", size=n) for n in (500, 501, 502)] + [finish()], context_window=3000
    )
    agent = Agent(model, [Big()], store, limits=Limits(max_output_tokens=200))
    sid = agent.start("task", "/tmp")
    seen: list[list] = []
    orig = model.complete

    def spy(messages, tools, exclude=frozenset()):
        seen.append(messages)
        return orig(messages, tools, exclude)

    model.complete = spy  # type: ignore[method-assign]
    result = agent.run(sid)
    elided = [m for msgs in seen for m in msgs if m.meta.get("elided")]
    assert elided and "removed to fit the context window" in elided[0].content
    assert all(m.role != "tool" or not m.meta.get("elided") for m in store.messages(sid))
    assert result.status == "finished"

    tiny = ReplayModel([call("big", size=2000), finish()], context_window=600)
    agent = Agent(
        tiny, [Big()], store, limits=Limits(max_output_tokens=100, max_tool_output_chars=99999)
    )
    sid = agent.start("task", "/tmp")
    result = agent.run(sid)
    assert result.status == "context_overflow"
    assert "context window" in result.summary


def test_long_arguments_of_older_calls_are_elided_when_outputs_are_not_enough(store):
    """Five drafted scripts overflowed a 1.5B's window: their text goes before the run does."""
    scripts = [call("echo", text=f"# script {n}\n" + "x = 1\n" * 400) for n in range(5)]
    model = ReplayModel([*scripts, finish("done")], context_window=3000)
    agent = Agent(model, [Echo()], store, limits=Limits(max_output_tokens=200))
    sid = agent.start("task", "/tmp")
    seen: list[list] = []
    orig = model.complete

    def spy(messages, tools, exclude=frozenset()):
        seen.append(messages)
        return orig(messages, tools, exclude)

    model.complete = spy  # type: ignore[method-assign]
    result = agent.run(sid)
    assert result.status == "finished", result.summary
    last = [m for m in seen[-1] if m.role == "assistant" and m.tool_calls]
    text = last[0].tool_calls[0].arguments["text"]
    assert text.startswith("# script 0") and "characters elided to fit" in text
    assert last[-1].tool_calls[0].arguments["text"].count("x = 1") == 400  # the latest, whole
    stored = [m for m in store.messages(sid) if m.role == "assistant" and m.tool_calls]
    assert all(m.tool_calls[0].arguments["text"].count("x = 1") == 400 for m in stored[:5])


def test_old_draft_steps_are_left_out_when_shortening_is_not_enough():
    """21 code rounds of a 1.5B overflowed its window even shortened: the oldest go, noted."""
    from spud.core.context import fit_context
    from spud.core.messages import Message, ToolCall

    msgs = [Message(role="system", content="sys"), Message(role="user", content="the task")]
    for n in range(30):
        code = ToolCall(id=f"c{n}", name="echo", arguments={"text": f"round {n} " + "y" * 90})
        msgs += [
            Message(role="assistant", tool_calls=[code], meta={"kind": "draft", "draft": "x"}),
            Message(role="tool", name="echo", tool_call_id=f"c{n}", content=f"wrote, {n} failed"),
        ]
    model = ReplayModel([], context_window=2000)
    prompt = fit_context(model, msgs, [], reserve=200)
    assert model.count_tokens(prompt, []) <= 1800
    assert prompt[:2] == msgs[:2] and prompt[-2:] == msgs[-2:]  # the task and the latest round
    note = prompt[2].content
    assert prompt[2].role == "user" and "earlier draft steps left out" in note
    kept = [m.tool_call_id for m in prompt if m.role == "tool"]
    left = int(note.split("[")[1].split(" ")[0])
    assert kept == [f"c{n}" for n in range(left, 30)]  # the oldest left out, in order
    assert 0 < left < 29


CRASHER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pydantic import BaseModel
    from spud.core.agent import Agent
    from spud.core.messages import ToolResult
    from spud.models.replay import ReplayModel
    from spud.store.sql import SqlStore

    log = Path(sys.argv[2])

    class Step:
        name = "step"
        description = "Record a step; the third one crashes the process once."
        class Args(BaseModel):
            n: int
        def run(self, args):
            if args.n == 3 and not (log.parent / "crashed").exists():
                (log.parent / "crashed").touch()
                os.kill(os.getpid(), 9)
            with log.open("a") as f:
                f.write(f"{args.n}\\n")
            return ToolResult(output=f"step {args.n} done")

    replies = [{"calls": [{"name": "step", "arguments": {"n": i}}]} for i in range(1, 6)]
    replies.append({"calls": [{"name": "finish", "arguments": {"summary": "all steps"}}]})
    agent = Agent(ReplayModel(replies), [Step()], SqlStore(sys.argv[1]))
    sid = sys.argv[3] if len(sys.argv) > 3 else agent.start("five steps", "/tmp")
    print(sid, flush=True)
    print(agent.run(sid).status, flush=True)
    """
)


def test_resume_after_kill_loses_and_repeats_nothing(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'spud.db'}"
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    log = tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    first = subprocess.run(
        [sys.executable, script, url, log], capture_output=True, text=True, env=env
    )
    assert first.returncode == -9
    sid = first.stdout.split()[0]
    assert log.read_text().split() == ["1", "2"]
    second = subprocess.run(
        [sys.executable, script, url, log, sid], capture_output=True, text=True, env=env
    )
    assert second.stdout.split()[1] == "finished", second.stderr
    assert log.read_text().split() == ["1", "2", "3", "4", "5"]
    from spud.store.sql import SqlStore

    msgs = SqlStore(url).messages(sid)
    calls = [c.arguments.get("n") for m in msgs if m.role == "assistant" for c in m.tool_calls]
    assert calls == [1, 2, 3, 4, 5, None]
    results = [m.tool_call_id for m in msgs if m.role == "tool"]
    assert len(results) == len(set(results)) == 6
