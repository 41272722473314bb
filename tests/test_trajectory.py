"""What a step asks of the growing message list, kept up to date instead of re-read."""

from __future__ import annotations

from spud.core.messages import WORKSPACE_ORIGIN, Message, ToolCall, Trajectory
from spud.core.protocols import ToolSpec
from spud.core.tokens import PromptTokens
from spud.models.replay import ReplayModel


def _call(text: str, result: str = "same", **meta: object) -> list[Message]:
    call = ToolCall(name="echo", arguments={"text": text})
    return [
        Message(role="assistant", tool_calls=[call]),
        Message(
            role="tool",
            name="echo",
            tool_call_id=call.id,
            content=result,
            meta={"result_hash": result, **meta},
        ),
    ]


def test_facts_follow_appends_and_match_a_fresh_read() -> None:
    grown = Trajectory([Message(role="system"), Message(role="user", content="task")])
    assert grown.of(grown).last_user_turn == 1 and grown.untrusted is False
    for m in _call("a") + _call("a") + _call("b"):
        grown.append(m)
    a = ToolCall(name="echo", arguments={"text": "a"})
    assert Trajectory.of(grown).repeats(a, "same") == 3  # twice before, this is the third
    assert grown.repeats(ToolCall(name="echo", arguments={"text": "b"}), "other") == 1
    grown.append(Message(role="user", content="note", meta={"kind": "format_error"}))
    grown.append(Message(role="tool", untrusted=True, meta={"origin": WORKSPACE_ORIGIN}))
    assert Trajectory.of(grown).untrusted == WORKSPACE_ORIGIN
    grown.append(Message(role="user", content="next turn"))
    grown.append(Message(role="tool", untrusted=True))  # from outside the workspace
    fresh = Trajectory.of(list(grown))
    for facts in (Trajectory.of(grown), fresh):
        assert facts.last_user_turn == 10 and facts.untrusted is True
        assert facts.repeats(a, "same") == 3
        assert set(facts.results()) == {m.tool_call_id for m in grown if m.role == "tool"}


def test_a_list_changed_other_than_by_appending_is_read_again() -> None:
    grown = Trajectory([Message(role="user", content="task"), *_call("a")])
    assert Trajectory.of(grown).repeats(ToolCall(name="echo", arguments={"text": "a"}), "same") == 2
    grown[1:] = _call("b")
    assert Trajectory.of(grown).repeats(ToolCall(name="echo", arguments={"text": "a"}), "same") == 1


class CountingModel(ReplayModel):
    """Counts how often the whole list is counted."""

    def __init__(self, context_window: int) -> None:
        super().__init__([], context_window=context_window)
        self.whole_counts = 0

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        self.whole_counts += len(messages) > 1
        return super().count_tokens(messages, tools)


def test_prompt_tokens_agree_with_the_exact_count_and_count_the_whole_list_only_near_the_limit():
    model = CountingModel(context_window=4000)
    budget = model.context_window - 700
    spec = ToolSpec(name="echo", description="Echo.", parameters={"type": "object"})
    tokens = PromptTokens(model)
    messages = [Message(role="system", content="You are Spud."), Message(role="user", content="go")]
    for i in range(120):
        messages += _call(f"part {i}", result="x" * (7 * i % 90))
        exact = ReplayModel([]).count_tokens(messages, [spec])
        assert tokens.fits(messages, [spec], budget) == (exact <= budget)
        if exact < budget // 2:  # far from the limit only the new messages are counted
            assert model.whole_counts == 1
    assert exact > budget  # the loop went past the limit
