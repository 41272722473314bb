"""Drafts: code merged by name, scripts run, each checked and repaired through the loop."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from spud.core.agent import Agent, Harness, Limits
from spud.core.messages import Message, ModelReply, Usage
from spud.models.replay import ReplayModel
from spud.playbooks import brief_for
from spud.playbooks.draft import CodeDraft, blanked
from spud.sandbox.bubblewrap import SCRIPT_HOOK, Sandbox, SandboxConfig
from spud.tools.pymerge import MergeError, merge_python
from spud.tools.shell import coding_tools

MODULE = '''"""Shop."""

from collections import defaultdict


def total(items):
    raise NotImplementedError


class Cart:
    """A cart."""

    def __init__(self):
        self.items = defaultdict(int)

    def add(self, sku):
        raise NotImplementedError

    def count(self):
        raise NotImplementedError


def untouched():
    return 1
'''


def test_a_function_replaces_its_namesake_and_keeps_the_rest():
    merged = merge_python(MODULE, "def total(items):\n    return sum(items)\n")
    assert "return sum(items)" in merged
    assert "NotImplementedError" in merged  # the cart's stubs are still there
    assert "def untouched():\n    return 1" in merged
    assert merged.count("def total") == 1


def test_a_method_written_alone_goes_into_its_class_indented():
    merged = merge_python(MODULE, "def add(self, sku):\n    self.items[sku] += 1\n")
    assert "    def add(self, sku):\n        self.items[sku] += 1\n" in merged
    assert merged.count("def add") == 1


def test_a_partial_class_replaces_its_methods_and_keeps_the_others():
    snippet = "import re\n\nclass Cart:\n    def count(self):\n        return len(self.items)\n\n    def clear(self):\n        self.items.clear()\n"
    merged = merge_python(MODULE, snippet)
    assert "return len(self.items)" in merged and "def clear(self)" in merged
    assert "self.items = defaultdict(int)" in merged  # __init__ kept
    assert "\nimport re\n" in merged and merged.index("import re") < merged.index("def total")
    compile(merged, "shop.py", "exec")


def test_a_whole_file_replaces_the_module():
    whole = "def total(items):\n    return 0\n\nclass Cart:\n    pass\n\ndef untouched():\n    return 2\n"
    assert merge_python(MODULE, whole) == whole


DOCUMENTED = '''def slugify(title):
    """A URL slug.

    Lowercase words joined by hyphens.
    """
    raise NotImplementedError


class Cart:
    def add(self, sku):
        """Add one of sku."""
        raise NotImplementedError

    def count(self):
        return 0
'''


def test_a_function_written_without_its_docstring_keeps_the_old_one():
    merged = merge_python(DOCUMENTED, "def slugify(title):\n    return title.lower()\n")
    assert (
        '    """A URL slug.\n\n    Lowercase words joined by hyphens.\n    """\n    return title.lower()\n'
        in merged
    )
    method = merge_python(DOCUMENTED, "def add(self, sku):\n    self.n = 1\n")
    assert '        """Add one of sku."""\n        self.n = 1\n' in method
    own = merge_python(DOCUMENTED, 'def slugify(title):\n    """Mine."""\n    return title\n')
    assert "Mine." in own and "A URL slug" not in own  # its own docstring wins
    whole = "def slugify(title):\n    return title\n\n\nclass Cart:\n    def add(self, sku):\n        pass\n\n    def count(self):\n        return 1\n"
    merged = merge_python(DOCUMENTED, whole)  # every definition: the module is replaced
    assert '"""A URL slug.' in merged and '"""Add one of sku."""\n        pass' in merged
    assert "return 1" in merged
    compile(merged, "m.py", "exec")


def test_new_definitions_are_added_and_invalid_code_is_refused():
    assert merge_python(MODULE, "def extra():\n    return 3\n").rstrip().endswith("return 3")
    with pytest.raises(MergeError, match="not valid Python"):
        merge_python(MODULE, "def broken(:\n")


class Drafter(ReplayModel):
    """The replay model (tool calls) that also answers the draft prompts in plain text; past
    its drafts it repeats the last one, as a model sampled greedily would."""

    def __init__(self, drafts: list[str], replies: list[dict] | None = None) -> None:
        super().__init__(replies or [])
        self.texts = list(drafts)
        self.drafts = True  # a text model that drafts
        self.prompts: list[list[Message]] = []
        self.loop_prompts: list[list[Message]] = []  # what the loop's steps were sent
        self.temperatures: list[float | None] = []  # each draft's

    def complete(self, messages, tools, exclude=frozenset()) -> ModelReply:
        self.loop_prompts.append(list(messages))
        return super().complete(messages, tools, exclude)

    def chat(
        self,
        messages: list[Message],
        max_tokens: int = 2048,
        temperature: float | None = None,
        until_block: bool = False,
    ) -> ModelReply:
        self.prompts.append(list(messages))
        self.temperatures.append(temperature)
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        usage = Usage(prompt_tokens=100, completion_tokens=20)
        return ModelReply(message=Message(role="assistant", content=text), usage=usage)


TASK = "test_shop.py fails. Implement total and Cart in shop.py so that the tests pass."
TESTS = """from shop import Cart, total


def test_total():
    assert total([1, 2]) == 3


def test_cart():
    c = Cart()
    c.add("a")
    c.add("a")
    assert c.count() == 2
"""
GOOD_TOTAL = "The stub raises.\n```python\ndef total(items):\n    return sum(items)\n```"
GOOD_CART = (
    "Cart needs add and count.\n```python\nclass Cart:\n    def add(self, sku):\n"
    "        self.items[sku] += 1\n\n    def count(self):\n        return sum(self.items.values())\n```"
)


def draft_run(ws: Path, store, model, max_steps: int = 10, keep: bool = False, samples: int = 1):
    if not keep:
        (ws / "shop.py").write_text(MODULE)
    (ws / "test_shop.py").write_text(TESTS)
    sandbox = Sandbox(SandboxConfig(workspace=ws))
    brief = brief_for(TASK, ws, sandbox)
    assert brief is not None and brief.opening is not None
    agent = Agent(
        model,
        [t for t in coding_tools(ws, sandbox) if t.name in brief.tools],
        store,
        limits=Limits(max_steps=max_steps),
        harness=Harness(code_samples=samples),
        verifier=brief.verifier,
        opening=brief.opening,
    )
    sid = agent.start(TASK, str(ws), "system" + brief.prompt, brief.context)
    return agent.run(sid), store.messages(sid)


def test_a_failing_draft_gets_the_test_output_and_the_repair_finishes(workspace: Path, store):
    model = Drafter([GOOD_TOTAL, GOOD_CART])
    result, messages = draft_run(workspace, store, model)
    assert result.status == "finished"
    assert "checked and passed: `python -m pytest -q`" in result.summary
    calls = [c.name for m in messages if m.role == "assistant" for c in m.tool_calls]
    assert calls == ["write_file", "write_file", "finish"]
    repair = model.prompts[1][-1].content
    assert "The test test_cart fails" in repair and "- test_cart" in repair  # what still fails
    assert len(model.prompts[1]) == 2  # asked afresh: its own earlier reply is not shown
    assert "return sum(items)" in repair  # but the code as it is now, with that reply merged
    assert 'c.add("a")' in repair and "NotImplementedError" in repair  # its code and failure
    assert "shop.py" in model.prompts[0][1].content and "test_total" in model.prompts[0][1].content
    # every round begins with the task and the tests, the same text: the KV cache keeps them
    first = model.prompts[0][1].content.split("\n\nshop.py:\n")[0]
    assert first.startswith(TASK) and first.endswith(TESTS.rstrip() + "\n```")
    assert model.prompts[1][1].content.startswith(first + "\n\nshop.py:\n")
    assert result.prompt_tokens == 200  # both drafts are counted
    shop = (workspace / "shop.py").read_text()
    assert "def untouched():\n    return 1" in shop


def test_a_draft_with_a_bracket_left_open_is_closed_and_run(workspace: Path, store):
    unclosed = "The stub raises.\n```python\ndef total(items):\n    return int(sum(items)\n```"
    model = Drafter([unclosed, GOOD_CART])
    result, _ = draft_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert "return int(sum(items))" in (workspace / "shop.py").read_text()
    assert len(model.prompts) == 2  # not asked to fix the syntax: the second draft is the cart
    assert "not valid Python" not in model.prompts[1][-1].content


def test_the_reason_comment_of_a_whole_file_draft_stays_out_of_the_file(workspace: Path, store):
    (workspace / "shop.py").write_text("# shop: the cart\n" + MODULE)  # the file's own comment
    whole = (
        "```python\n# total raised and Cart had no add: both written\n\n# shop: the cart\n"
        "from collections import defaultdict\n\n\ndef total(items):\n    return sum(items)\n\n\n"
        "class Cart:\n    def __init__(self):\n        self.items = defaultdict(int)\n\n"
        "    def add(self, sku):\n        self.items[sku] += 1\n\n    def count(self):\n"
        "        return sum(self.items.values())\n\n\ndef untouched():\n    return 1\n```"
    )
    model = Drafter([whole])
    result, _ = draft_run(workspace, store, model, keep=True)
    assert result.status == "finished", result.summary
    shop = (workspace / "shop.py").read_text()
    assert shop.startswith("# shop: the cart\n") and "both written" not in shop
    assert result.summary.startswith("total raised and Cart had no add")  # the reason is said


def test_other_syntax_errors_are_not_guessed_at():
    from spud.tools.pymerge import closed

    for code in ["def g(:\n    pass\n", "if f(a, (b:\n    pass\n", "x = (1 +\n"]:
        with pytest.raises(SyntaxError) as err:
            compile(code, "draft", "exec")
        assert closed(code, err.value) is None, code


BAD_TOTAL = "Sum without the first.\n```python\ndef total(items):\n    return sum(items[1:])\n```"


def test_a_draft_that_makes_more_tests_fail_is_undone(workspace: Path, store):
    model = Drafter([GOOD_TOTAL, BAD_TOTAL, GOOD_CART])
    result, messages = draft_run(workspace, store, model)
    assert result.status == "finished"
    writes = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "write_file"]
    assert [bool(m.meta.get("undo")) for m in writes] == [False, False, True, False]
    assert result.steps == 4  # three drafts and finish: putting the code back is not a step
    assert "back as it was" in model.prompts[2][-1].content
    assert "return sum(items)\n" in model.prompts[2][-1].content  # the good total is shown
    assert "return sum(items)\n" in (workspace / "shop.py").read_text()


def test_a_round_whose_draft_fixes_nothing_tries_samples_and_keeps_the_one_that_passes(
    workspace: Path, store
):
    model = Drafter([GOOD_TOTAL, BAD_TOTAL, GOOD_TOTAL, GOOD_CART, BAD_TOTAL])
    result, messages = draft_run(workspace, store, model, samples=3)
    assert result.status == "finished", result.summary
    # round 2's greedy draft broke total; its request was sampled twice more, and the second
    # sample (the cart) passed: asked with the same request, the engine's cache holds it
    assert model.temperatures == [None, None, 0.8, 0.8]
    assert model.prompts[3] == model.prompts[2] == model.prompts[1]
    writes = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "write_file"]
    assert [bool(m.meta.get("sampled")) for m in writes] == [False, False, True]
    shop = (workspace / "shop.py").read_text()
    assert "return sum(items)\n" in shop and "self.items[sku] += 1" in shop  # onto round 2's code
    assert "Cart needs add and count." in writes[-1].meta["draft"]


def test_samples_that_fix_nothing_leave_the_workspace_as_the_round_left_it(workspace: Path, store):
    model = Drafter([GOOD_TOTAL, BAD_TOTAL, BAD_TOTAL, "```python\nnot python(\n```", GOOD_CART])
    result, messages = draft_run(workspace, store, model, samples=3)
    assert result.status == "finished", result.summary
    writes = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "write_file"]
    assert [bool(m.meta.get("undo")) for m in writes] == [False, False, True, False]
    assert not any(m.meta.get("sampled") for m in writes)  # the next round's greedy draft passed
    assert len(model.prompts) == 5


def test_a_definition_a_draft_made_worse_is_put_back_and_its_other_fix_kept(workspace: Path, store):

    both = BAD_TOTAL + "\n" + GOOD_CART
    model = Drafter([GOOD_TOTAL, both])
    result, messages = draft_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert len(model.prompts) == 2  # no third draft: the cart's fix stood, total came back
    shop = (workspace / "shop.py").read_text()
    assert "return sum(items)\n" in shop and "self.items[sku] += 1" in shop
    back = [m.meta.get("put_back") for m in messages if m.meta.get("put_back")]
    assert back == [["total"]]


def test_changed_definitions_are_found_and_put_back_one_at_a_time():
    from spud.playbooks.draft import changed_units, swapped

    after = MODULE.replace("raise NotImplementedError", "return 0")
    assert changed_units(MODULE, after) == ["total", "Cart.add", "Cart.count"]
    one = swapped(after, MODULE, "Cart.add")
    assert one is not None and one.count("raise NotImplementedError") == 1
    assert "    def add(self, sku):\n        raise NotImplementedError\n" in one
    compile(one, "shop.py", "exec")
    assert swapped(after, MODULE, "missing") is None


def shop_draft(workspace: Path, output: str) -> CodeDraft:
    """A code draft of shop.py whose tests always report this output."""
    from spud.playbooks.checks import TaskVerifier

    return CodeDraft(
        workspace,
        TASK,
        ["shop.py"],
        TaskVerifier(checks=[]),
        lambda: (False, output),
        ["test_shop.py"],
    )


def test_a_test_tried_twice_gives_the_next_failing_test_its_turn(tmp_path: Path):
    (tmp_path / "shop.py").write_text(MODULE)
    (tmp_path / "test_shop.py").write_text(
        "import pytest\nfrom shop import total\n\n\n@pytest.mark.parametrize(\n"
        "    ('items', 'want'), [([1, 2], 3), ([], 0)]\n)\ndef test_sum(items, want):\n"
        "    assert total(items) == want\n\n\ndef test_cart():\n    assert False\n"
    )
    output = (
        "FAILED test_shop.py::test_sum[items0-3] - NotImplementedError\n"
        "FAILED test_shop.py::test_sum[items1-0] - NotImplementedError\n"
        "FAILED test_shop.py::test_cart - assert False\n3 failed in 0.1s"
    )
    draft = shop_draft(tmp_path, output)
    tried = Counter()
    asks = [draft.repair(output, tried)[0] for _ in range(3)]
    assert "The test test_sum fails" in asks[0] and "The test test_sum fails" in asks[1]
    assert "The test test_cart fails" in asks[2]
    assert "@pytest.mark.parametrize(" in asks[0] and "([], 0)" in asks[0]  # its cases shown
    assert "- test_sum[items1-0]: NotImplementedError" in asks[0]  # each failing case listed
    assert "3 fail" in asks[0]


def test_a_draft_of_the_test_itself_is_not_run_and_the_next_request_says_why(
    workspace: Path, store
):
    test_back = (
        "```python\n# the sum is wrong\ndef test_total():\n    assert total([1, 2]) == 3\n```"
    )
    model = Drafter([test_back, GOOD_TOTAL + "\n" + GOOD_CART])
    result, messages = draft_run(workspace, store, model)
    assert result.status == "finished"
    again = model.prompts[1][-1].content
    assert "Your block defined test_total: tests, which stay as they are" in again
    assert (workspace / "test_shop.py").read_text() == TESTS


def test_reasons_without_code_are_followed_by_a_request_for_the_code(workspace: Path, store):
    model = Drafter(["I would sum the items.", GOOD_TOTAL + "\n" + GOOD_CART])
    result, messages = draft_run(workspace, store, model)
    assert result.status == "finished"
    follow_up = model.prompts[1]  # the same chat, its reasons kept, the code asked for
    assert [m.role for m in follow_up] == ["system", "user", "assistant", "user"]
    assert follow_up[2].content == "I would sum the items."
    assert "Now write that code" in follow_up[3].content
    writes = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "write_file"]
    assert len(writes) == 1 and "return sum(items)" in (workspace / "shop.py").read_text()


def test_a_reply_without_code_is_asked_again_and_nothing_is_written(workspace: Path, store):
    model = Drafter(["I would sum the items.", "Still no code.", GOOD_TOTAL + "\n" + GOOD_CART])
    result, messages = draft_run(workspace, store, model)
    assert result.status == "finished"
    assert "no ```python block" in model.prompts[2][-1].content and len(model.prompts[2]) == 2
    writes = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "write_file"]
    assert len(writes) == 1


def test_when_drafts_run_out_the_loop_goes_on_with_the_model(workspace: Path, store):
    fixed_cart = MODULE.replace(
        "def add(self, sku):\n        raise NotImplementedError",
        "def add(self, sku):\n        self.items[sku] += 1",
    ).replace(
        "def count(self):\n        raise NotImplementedError",
        "def count(self):\n        return sum(self.items.values())",
    )
    fixed = fixed_cart.replace(
        "def total(items):\n    raise NotImplementedError",
        "def total(items):\n    return sum(items)",
    )
    replies = [
        {"answer": "(the draft's step)"},  # the replay answers by step: the one draft is 1
        {"calls": [{"name": "write_file", "arguments": {"path": "shop.py", "content": fixed}}]},
        {"calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
    ]
    rounds = CodeDraft.rounds
    model = Drafter([GOOD_TOTAL] * (rounds + 1), replies)
    result, messages = draft_run(workspace, store, model, max_steps=12)
    assert result.status == "finished"
    drafts = [m for m in messages if m.meta.get("kind") == "draft"]
    assert len(drafts) == 1  # one that fixed a test; those that changed nothing are not run
    assert len(model.prompts) == rounds + 1  # then the model's own turn
    assert "it changed nothing" in model.prompts[2][-1].content


def test_drafts_that_stop_making_progress_are_sampled_more_freely(workspace: Path, store):
    model = Drafter([GOOD_TOTAL, BAD_TOTAL, BAD_TOTAL, BAD_TOTAL, BAD_TOTAL, BAD_TOTAL])
    result, messages = draft_run(workspace, store, model, max_steps=30)
    assert result.status != "repetition"  # each bad draft was undone by the same write
    # the first two rounds without progress at the model's own temperature, then more freely
    assert model.temperatures[:3] == [None, None, None]
    assert set(model.temperatures[3:]) == {0.7}
    assert len(model.temperatures) == CodeDraft.rounds + 1


def shown_source(prompt: str, rel: str = "shop.py") -> str:
    """The text a draft request shows for one file."""
    return prompt.split(f"\n\n{rel}:\n```\n")[1].split("\n```")[0]


def test_a_function_sent_back_unchanged_is_next_asked_for_anew_without_its_code(
    workspace: Path, store
):
    model = Drafter([GOOD_CART, GOOD_CART, GOOD_TOTAL])  # the second changes nothing
    result, messages = draft_run(workspace, store, model)
    assert result.status == "finished"
    first_repair, anew = model.prompts[1][-1].content, model.prompts[2][-1].content
    assert "The test test_total fails" in first_repair and "anew" not in first_repair
    assert "def total(items):\n    raise NotImplementedError" in shown_source(first_repair)
    assert "it changed nothing" in anew and "Write total anew" in anew
    source = shown_source(anew)
    assert "def total(items):\n    ...  # left out: write it anew\n" in source
    assert "raise NotImplementedError" not in source and "self.items[sku] += 1" in source
    assert "return sum(items)" in (workspace / "shop.py").read_text()


def test_a_draft_that_fixes_nothing_gets_the_function_its_test_calls_asked_anew(tmp_path: Path):
    (tmp_path / "shop.py").write_text(MODULE.replace("raise NotImplementedError", "return 0"))
    (tmp_path / "test_shop.py").write_text(TESTS)
    output = (
        "_____ test_total _____\n\n    def test_total():\n>       assert total([1, 2]) == 3\n"
        "E       assert 0 == 3\n\ntest_shop.py:5: AssertionError\n"
        "FAILED test_shop.py::test_total - assert 0 == 3\n1 failed in 0.1s"
    )
    draft = shop_draft(tmp_path, output)
    ask = draft.again(output, Counter(), anew=True)  # no frame in shop.py: the call it makes
    assert "Write total anew" in ask and "return 0\n\n\nclass Cart" not in ask
    assert "Change total in shop.py so that test_total passes" in draft.again(
        output, Counter()
    )  # a plain repair


def test_the_function_named_like_the_failing_test_is_the_suspect_before_its_setup(
    tmp_path: Path,
):
    (tmp_path / "todo.py").write_text(
        "def complete(items, i):\n    items[i] = True\n\n\n"
        "def to_markdown(items):\n    return ''\n\n\ndef by_tag(items, tag):\n    return []\n"
    )
    (tmp_path / "test_todo.py").write_text("")
    draft = shop_draft(tmp_path, "")
    draft.sources = ["todo.py"]
    test = "def test_markdown_sorted_by_id():\n    items = [False]\n    complete(items, 0)\n"
    test += "    assert by_tag(items, 'x') == []\n    assert to_markdown(items) == '- [x]'\n"
    assert draft._suspect("(see the list above)", test) == ("todo.py", "to_markdown")


def test_the_suspect_of_a_script_run_by_the_test_is_the_last_frame_of_its_traceback(
    tmp_path: Path,
):
    (tmp_path / "tally.py").write_text("def main(argv=None):\n    raise NotImplementedError\n")
    (tmp_path / "test_tally.py").write_text("")
    draft = shop_draft(tmp_path, "")
    draft.sources = ["tally.py"]
    failure = (
        "E   AssertionError: Traceback (most recent call last):\n"
        'E       File "/ws/tally.py", line 9, in <module>\n'
        'E       File "/ws/tally.py", line 2, in main\n'
        "E   NotImplementedError"
    )
    test = "def test_top(files):\n    assert tally(files, 'a.txt') == ['1 a']\n"
    assert draft._suspect(failure, test) == ("tally.py", "main")


def test_a_blanked_function_keeps_its_signature_and_docstring():
    source = 'class A:\n    def f(self, x):\n        """Doc."""\n        y = x\n        return y\n\n    def g(self):\n        return 2\n'
    assert blanked(source, "f") == (
        'class A:\n    def f(self, x):\n        """Doc."""\n        ...  # left out: write it anew\n'
        "\n    def g(self):\n        return 2\n"
    )
    assert blanked(source, "missing") == source
    assert (
        blanked('def h():\n    """Only a docstring."""\n', "h")
        == 'def h():\n    """Only a docstring."""\n'
    )


def test_a_model_without_plain_text_replies_skips_the_drafts(workspace: Path, store):
    fixed = "def total(items):\n    return sum(items)\n"
    replies = [
        {"calls": [{"name": "write_file", "arguments": {"path": "shop.py", "content": fixed}}]}
    ]
    result, messages = draft_run(workspace, store, ReplayModel(replies), max_steps=1)
    assert not [m for m in messages if m.meta.get("kind") == "draft"]


CHORE = "Count the lines of notes.txt and write the number into count.txt."


def script_run(
    ws: Path,
    store,
    model,
    task: str = CHORE,
    office: bool = False,
    max_steps: int = 10,
    votes: int = 1,
    by_hand: bool = False,
):
    from spud.tools.office.tools import office_tools

    sandbox = Sandbox(SandboxConfig(workspace=ws))
    tools = coding_tools(ws, sandbox) + (office_tools(ws) if office else [])
    brief = brief_for(task, ws, sandbox)
    assert brief is not None and brief.opening is not None
    agent = Agent(
        model,
        tools,
        store,
        limits=Limits(max_steps=max_steps),
        verifier=brief.verifier,
        opening=brief.opening,
        harness=Harness(draft_votes=votes, by_hand=by_hand),
    )
    sid = agent.start(task, str(ws), "system" + brief.prompt, brief.context)
    return agent.run(sid), store.messages(sid)


def test_a_script_draft_that_fails_gets_its_error_and_the_fix_finishes(workspace: Path, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    broken = "It counts lines.\n```python\nprint(open('notes.txt').read().count('\\n') +)\n```"
    crashing = "It counts lines.\n```python\nn = len(open('note.txt').readlines())\n```"
    good = (
        "It counts the lines and writes the number.\n```python\n"
        "n = len(open('notes.txt').readlines())\nopen('count.txt', 'w').write(str(n))\n```"
    )
    model = Drafter([broken, crashing, good])
    result, messages = script_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert (workspace / "count.txt").read_text() == "3"
    assert "not valid Python" in model.prompts[1][-1].content
    assert "FileNotFoundError" in model.prompts[2][-1].content  # the script's own error
    assert "It created, changed or removed no file." in model.prompts[2][-1].content
    # python prints no source for a script read from stdin; the repair shows the line
    assert "line 1, in <module>\n    n = len(open('note.txt')" in model.prompts[2][-1].content
    assert result.summary.startswith("It counts the lines and writes the number.")
    assert "checked and passed: output count.txt" in result.summary
    runs = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "bash"]
    assert len(runs) == 2 and not [p for p in workspace.iterdir() if p.suffix == ".py"]


def test_passing_scripts_vote_with_their_outputs_and_the_most_agreed_stand(workspace, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    # the file exists, so the check passes, but it holds the text rather than the count
    wrong = "It copies.\n```python\nopen('count.txt', 'w').write(open('notes.txt').read())\n```"
    good = "It counts.\n```python\nopen('count.txt', 'w').write('3')\n```"
    other = "It counts lines.\n```python\nn = len(open('notes.txt').readlines())\nopen('count.txt', 'w').write(f'{n}\\n')\n```"
    model = Drafter([wrong, good, other])
    result, messages = script_run(workspace, store, model, votes=3)
    assert result.status == "finished", result.summary
    assert (workspace / "count.txt").read_text().strip() == "3"
    assert "(2 of 3 passing drafts made these outputs)" in result.summary
    assert result.summary.startswith("It counts.")
    # each further draft is a fresh chat: the task, not the earlier scripts
    assert [len(p) for p in model.prompts] == [2, 2, 2]
    assert messages[-2].meta["agreeing"] == 2 and messages[-2].meta["drafts_passed"] == 3


def test_the_chosen_scripts_outputs_are_put_back_when_a_later_one_differs(workspace, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    good = "It counts.\n```python\nopen('count.txt', 'w').write('3')\n```"
    wrong = "It copies.\n```python\nopen('count.txt', 'w').write(open('notes.txt').read())\n```"
    model = Drafter([good, wrong, good])  # the same script again votes without a run
    result, messages = script_run(workspace, store, model, votes=3)
    assert result.status == "finished", result.summary
    assert (workspace / "count.txt").read_text() == "3"
    runs = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "bash"]
    assert len(runs) == 3 and runs[-1].meta.get("chosen")  # good, wrong, good again to restore


def test_script_rounds_that_outgrow_the_context_window_leave_out_their_oldest(workspace, store):
    """Ten failing script rounds, each told its failure, once asked a 1.5B for more tokens than
    its window held and ended the run in a ValueError: the oldest rounds are left out."""
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    padding = "".join(f"# step {n}: count the lines of the notes\n" for n in range(40))
    errors = ["ValueError", "KeyError", "TypeError", "IndexError", "NameError", "OSError"]
    drafts = [f"It counts.\n```python\n{padding}raise {e}('no')\n```" for e in errors]
    good = "It counts.\n```python\nopen('count.txt', 'w').write('3')\n```"
    model = Drafter([*drafts, good])
    model.context_window = 4096
    result, _ = script_run(workspace, store, model, max_steps=30)
    assert result.status == "finished", result.summary
    sizes = [model.count_tokens(p, []) for p in model.prompts]
    assert max(sizes) <= 4096 - 2048  # room for the reply each time
    first = model.prompts[0][1].content
    assert all(p[1].content.startswith(first) for p in model.prompts)  # the task, always
    last = "\n".join(m.content for m in model.prompts[-1])
    assert "raise ValueError" not in last and "raise KeyError" not in last  # the oldest left out
    assert "raise OSError" in last  # the latest round stays


class OutOfTime(Drafter):
    """A drafter whose run runs out of time at the draft after its last (of several, the
    last stays the one it repeats, so here: one draft)."""

    def chat(self, messages, max_tokens=2048, temperature=None, until_block=False):
        if len(self.prompts) == len(self.texts):
            from spud.core.errors import LimitReached

            raise LimitReached("time", "240s of 240s used")
        return super().chat(messages, max_tokens, temperature, until_block)


def test_a_passing_draft_finishes_when_the_time_runs_out_during_more_drafts(workspace, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    good = "It counts.\n```python\nopen('count.txt', 'w').write('3')\n```"
    model = OutOfTime([good])
    result, _ = script_run(workspace, store, model, votes=3)
    assert result.status == "finished", result.summary
    assert (workspace / "count.txt").read_text() == "3"


def test_passing_drafts_that_all_differ_end_with_a_summary_that_says_so(workspace, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    drafts = [f"It counts.\n```python\nopen('count.txt', 'w').write('{n}')\n```" for n in (3, 4, 5)]
    result, _ = script_run(workspace, store, Drafter(drafts), votes=3)
    assert result.status == "finished", result.summary
    assert (workspace / "count.txt").read_text() == "3"  # the first one's, put back
    assert "unsure: 3 passing drafts made 3 different outputs" in result.summary


def test_a_chore_that_changes_its_inputs_stops_at_the_first_passing_script(workspace, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    move = "It renames.\n```python\nimport os\nos.rename('notes.txt', 'count.txt')\n```"
    model = Drafter([move, "It says hi.\n```python\nprint('hi')\n```"])
    result, _ = script_run(workspace, store, model, votes=3)
    assert result.status == "finished", result.summary
    assert len(model.prompts) == 1  # a second draft would start from another workspace


def test_tests_whose_module_is_not_found_by_path_get_a_script_that_does_the_work(
    workspace: Path, store
):
    from spud.playbooks.script_draft import ScriptDraft

    package = workspace / "project" / "src" / "fastcart"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    (workspace / "project" / "tests").mkdir()
    (workspace / "project" / "tests" / "test_it.py").write_text(
        "from quickcart import VALUE\n\n\ndef test_value():\n    assert VALUE == 1\n"
    )
    task = (
        "Rename the package project/src/fastcart to quickcart. `cd project && PYTHONPATH=src "
        "python -m pytest -q tests` must pass."
    )
    sandbox = Sandbox(SandboxConfig(workspace=workspace))
    brief = brief_for(task, workspace, sandbox)
    assert brief is not None and brief.playbook == "code"
    assert isinstance(brief.opening, ScriptDraft) and brief.tools is None  # bash runs it
    rename = "It renames.\n```python\nimport os\nos.rename('project/src/fastcart', 'project/src/quickcart')\n```"
    model = Drafter([rename])
    agent = Agent(
        model,
        coding_tools(workspace, sandbox),
        store,
        limits=Limits(max_steps=10),
        verifier=brief.verifier,
        opening=brief.opening,
    )
    sid = agent.start(task, str(workspace), "system" + brief.prompt, brief.context)
    result = agent.run(sid)
    assert result.status == "finished", result.summary
    assert (workspace / "project" / "src" / "quickcart" / "__init__.py").exists()
    assert "project/src/fastcart/__init__.py" in model.prompts[0][1].content  # the files listed
    assert "1 passed" in result.summary or "checked and passed" in result.summary


def test_a_script_missing_a_common_import_gets_it_and_runs(workspace: Path, store):
    from spud.playbooks.script_draft import with_imports

    (workspace / "notes.txt").write_text("a\nb\nc\n")
    script = (
        "It counts.\n```python\nrows = list(csv.reader(open('notes.txt')))\n"
        "open('count.txt', 'w').write(json.dumps(len(rows)))\n```"
    )
    model = Drafter([script])
    result, _ = script_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert (workspace / "count.txt").read_text() == "3"
    # a name the script binds itself, a builtin, or an unknown one is left alone
    own = "def Font(x):\n    return x\nprint(Font(len(open)))\nfoo()"
    assert with_imports(own) == own
    assert with_imports("wb = Workbook()\nws.cell(1, 1).font = Font(bold=True)").startswith(
        "from openpyxl.styles import Font\nfrom openpyxl import Workbook\nwb ="
    )
    assert with_imports("[csv for csv in 'ab']") == "[csv for csv in 'ab']"


def test_a_script_that_writes_the_wrong_file_is_told_what_it_made(workspace: Path, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    wrong = "It counts.\n```python\nopen('count.csv', 'w').write('3')\n```"  # another kind
    good = "It counts.\n```python\nopen('count.txt', 'w').write('3')\n```"
    model = Drafter([wrong, good])
    result, _ = script_run(workspace, store, model)
    assert result.status == "finished", result.summary
    repair = model.prompts[1][-1].content
    assert "Files it created: count.csv" in repair and "count.txt was not created" in repair


def test_a_script_that_saves_the_output_under_another_name_gets_it_moved(workspace: Path, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    named = "It counts.\n```python\nopen('Line count.txt', 'w').write('3')\n```"
    model = Drafter([named])
    result, messages = script_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert (workspace / "count.txt").read_text() == "3"
    assert not (workspace / "Line count.txt").exists()
    commands = [
        m.tool_calls[0].arguments["command"]
        for m in messages
        if m.role == "assistant" and m.tool_calls[0].name == "bash"
    ]
    assert commands[-1] == "mv -- 'Line count.txt' count.txt"  # a step the run shows
    assert "under the names the task gives them: count.txt" in model.prompts[0][1].content
    assert "standard library (csv, json, re, pathlib, shutil)" in model.prompts[0][1].content


def test_a_crashing_script_is_shown_the_values_where_it_failed(workspace: Path, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    crash = (
        "It counts.\n```python\nlines = open('notes.txt').read().split()\n"
        "def last(i):\n    return lines[i]\nopen('count.txt', 'w').write(last(7))\n```"
    )
    good = "It counts.\n```python\nopen('count.txt', 'w').write('3')\n```"
    (workspace / "tree.py").write_text("NAME = 'the workspace tree.py'\n")
    crash = crash.replace("```python\n", "```python\nimport tree\nprint(tree.NAME)\n", 1)
    model = Drafter([crash, good])
    result, messages = script_run(workspace, store, model)
    assert result.status == "finished", result.summary
    repair = model.prompts[1][-1].content
    assert "line 5, in last\n    return lines[i]\nIndexError" in repair
    assert "Values where it failed:\n  lines = ['a', 'b', 'c']\n  i = 7" in repair
    assert "the workspace tree.py" in repair  # imports come from the workspace, not the hook's
    # the command a reader of the run (or the loop's model) sees is short: the hook is a file
    command = next(m for m in messages if m.role == "assistant").tool_calls[0].arguments["command"]
    assert command.splitlines()[0] == f"python3 {SCRIPT_HOOK} <<'SPUD_SCRIPT'"


def test_a_crash_inside_a_library_shows_the_scripts_line_and_the_tables_columns(tmp_path: Path):
    import subprocess
    import sys

    (tmp_path / "stock.csv").write_text("sku,qty\nK-1,4\n")
    script = (
        "import pandas as pd\ndf = pd.read_csv('stock.csv')\n"
        "both = pd.merge(df, df, on='sku', how='outer')\nboth['total'] = both['qty_a'] + 1\n"
    )
    run = [sys.executable, str(SCRIPT_HOOK)]
    out = subprocess.run(run, input=script, cwd=tmp_path, capture_output=True, text=True).stderr
    assert out.startswith(  # (the draft adds the script's source line to its frame)
        'Traceback (most recent call last):\n  File "<stdin>", line 4, in <module>\n'
        "  [... 2 more frame(s) inside pandas]\nKeyError: 'qty_a'\n"
    )
    assert "direct cause" not in out and "get_loc" not in out  # pandas' own frames and chain
    assert "  both = DataFrame of 1 rows, columns ['sku', 'qty_x', 'qty_y']; first rows:" in out


def test_a_csv_row_split_at_a_quoted_comma_gets_the_readers_hint(tmp_path: Path):
    """A quoted field after ", " is split by csv unless skipinitialspace is on: the row's None
    key is named and the reader's option shown."""
    import subprocess
    import sys

    (tmp_path / "x.csv").write_text('id, note, amount\nE1, "Zoom, monthly", 197.00\n')
    script = (
        "import csv\nfor row in csv.DictReader(open('x.csv')):\n    total = float(row[' amount'])\n"
    )
    run = [sys.executable, str(SCRIPT_HOOK)]
    out = subprocess.run(run, input=script, cwd=tmp_path, capture_output=True, text=True).stderr
    assert "ValueError: could not convert string to float" in out
    assert "Hint: row has a None key" in out and "skipinitialspace=True" in out
    script = "import csv\nrows = list(csv.DictReader(open('x.csv')))\nrows[5]\n"
    out = subprocess.run(run, input=script, cwd=tmp_path, capture_output=True, text=True).stderr
    assert "IndexError" in out and "Hint" not in out


def test_a_script_written_again_gets_a_fresh_start_not_another_run(workspace: Path, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    crash = "It counts.\n```python\nopen('count.txt', 'w').write(len(open('note.txt')))\n```"
    good = "It counts.\n```python\nopen('count.txt', 'w').write('3')\n```"
    model = Drafter([crash, crash, good])
    result, messages = script_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert [len(p) for p in model.prompts] == [2, 4, 2]  # the third ask is the first one again
    assert model.prompts[2] == model.prompts[0]
    runs = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "bash"]
    assert len(runs) == 2  # the copy was not run again


def test_the_same_failure_after_a_repair_gets_a_fresh_start(workspace: Path, store):
    (workspace / "notes.txt").write_text("n\n3\n")
    write = "open('count.txt', 'w').write"
    header = f"It reads.\n```python\n{write}(str(int(open('notes.txt').readline())))\n```"
    # the "repair" changes the script but not what fails: the header row is still read
    again = (
        f"It reads.\n```python\nline = open('notes.txt').readline()\n{write}(str(int(line)))\n```"
    )
    good = f"It reads.\n```python\n{write}(open('notes.txt').read().split()[1])\n```"
    model = Drafter([header, again, good])
    result, messages = script_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert [len(p) for p in model.prompts] == [2, 4, 2]  # a fresh chat, without the scripts
    assert "ValueError: invalid literal for int()" in model.prompts[1][-1].content
    fresh = model.prompts[2][1].content
    assert fresh.startswith(model.prompts[0][1].content)  # the first ask, and what failed
    assert "failed the same way twice:\n  File" in fresh and "ValueError: invalid" in fresh
    assert "line = 'n\\n'" in fresh  # the values where it failed
    runs = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "bash"]
    assert len(runs) == 3 and (workspace / "count.txt").read_text() == "3"


def test_the_loop_after_failed_drafts_reads_the_earlier_rounds_shortened(workspace, store):
    (workspace / "notes.txt").write_text("a\nb\nc\n")
    pad = "# " + "counts the lines of notes.txt " * 10 + "\n"
    drafts = [f"It counts.\n```python\n{pad}raise ValueError('round {n}')\n```" for n in range(10)]
    model = Drafter(drafts)
    _, stored = script_run(workspace, store, model, max_steps=20)
    loop = model.loop_prompts[0]
    runs = [m for m in loop if m.role == "assistant" and m.tool_calls[0].name == "bash"]
    outputs = [m.content for m in loop if m.role == "tool"]
    assert len(runs) == 10
    for call in runs[:9]:  # the earlier rounds: the script's start, the run's error
        assert "characters elided" in call.tool_calls[0].arguments["command"]
    assert [o.startswith("[an earlier draft round's run") for o in outputs] == [True] * 9 + [False]
    assert "ValueError: round 0" in outputs[0] and "Values where" not in outputs[0]
    assert runs[9].tool_calls[0].arguments["command"].count("counts the lines") == 10  # whole
    assert "ValueError: round 9" in outputs[9]
    assert "Traceback" in [m for m in stored if m.role == "tool"][0].content  # kept whole


def test_an_office_script_draft_writes_a_formula_that_is_checked(workspace: Path, store):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    for i, v in enumerate([3, 4, 5], start=2):
        ws[f"B{i}"] = v
    wb.save(workspace / "sales.xlsx")
    good = (
        "It writes the SUM formula.\n```python\nimport openpyxl\n"
        "wb = openpyxl.load_workbook('sales.xlsx')\nwb.active['B5'] = '=SUM(B2:B4)'\n"
        "wb.save('totals.xlsx')\n```"
    )
    model = Drafter([good])
    # a new workbook made from another: a script (an edit in place is drafted as cells)
    task = "Make totals.xlsx from sales.xlsx with a formula in B5 that adds up B2:B4."
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    assert "verify sales.xlsx, totals.xlsx" in result.summary
    assert openpyxl.load_workbook(workspace / "totals.xlsx").active["B5"].value == "=SUM(B2:B4)"
    assert "openpyxl" in model.prompts[0][1].content and "B4=5" in model.prompts[0][1].content


def test_an_office_script_reads_the_workbooks_values_as_plain_lists(workspace: Path, store):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "May"
    for row in [["Store", "Sales"], ["Oslo", 1200], ["Bergen", 800], ["Total", "=SUM(B2:B3)"]]:
        ws.append(row)
    wb.save(workspace / "stores.xlsx")
    script = (
        "```python\nSHEETS = {}\nrows = SHEETS['stores.xlsx']['May']\n"  # its own copy: dropped
        "best = max(rows[1:3], key=lambda r: r[1])\n"
        "open('best.txt', 'w').write(f'{best[0]} {rows[3][1]}')\n```"
    )
    model = Drafter([script])
    task = "Write best.txt with the store of stores.xlsx that sold the most."
    result, messages = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    # values as lists, the header first; a formula never calculated is its text
    assert (workspace / "best.txt").read_text() == "Oslo =SUM(B2:B3)"
    assert "`rows = SHEETS['stores.xlsx']['May']` gives" in model.prompts[0][1].content
    # the hook loads them: the command a reader (or the loop's model) sees is the script alone
    command = next(m for m in messages if m.role == "assistant").tool_calls[0].arguments["command"]
    assert command.splitlines()[0] == f"python3 {SCRIPT_HOOK} --sheets stores.xlsx <<'SPUD_SCRIPT'"
    assert "load_workbook" not in command


def may_sales(workspace: Path) -> None:
    """stores.xlsx: one sheet, May, with two stores' sales."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "May"
    for row in [["Store", "Sales"], ["Oslo", 1200], ["Bergen", 800]]:
        wb.active.append(row)
    wb.save(workspace / "stores.xlsx")


def test_an_office_script_that_misreads_a_worksheet_is_told_how_to_read_one(workspace: Path, store):
    may_sales(workspace)
    sliced = (  # a 1.5B's slips, eight scripts running
        "```python\nimport openpyxl\nws = openpyxl.load_workbook('stores.xlsx')['May']\n"
        "header, data = ws[1], ws[2:]\nopen('best.txt', 'w').write(str(data))\n```"
    )
    undefined = "```python\nopen('best.txt', 'w').write(max(data)[0])\n```"
    good = "```python\nrows = SHEETS['stores.xlsx']['May']\nopen('best.txt', 'w').write(rows[1][0])\n```"
    by_name = (
        "```python\nimport openpyxl\nwb = openpyxl.load_workbook('stores.xlsx')\n"
        "ws = wb.worksheets['May']\n```"
    )
    model = Drafter([by_name, sliced, undefined, good])
    task = "Write best.txt with the store of stores.xlsx that sold the most."
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    told = model.prompts[1][-1].content
    assert "list indices must be integers" in told and "ws = wb['Stock'] is the sheet" in told
    told = model.prompts[2][-1].content
    assert "Hint, how openpyxl reads and writes a worksheet" in told and "ws.iter_rows(" in told
    told = model.prompts[3][-1].content
    assert (
        "Hint: data is not defined here" in told and "rows = SHEETS['stores.xlsx']['May']" in told
    )


def test_an_office_script_that_drops_a_workbooks_sheets_is_sent_back(workspace: Path, store):
    import openpyxl

    may_sales(workspace)
    replaced = (  # what pandas' to_excel does to a workbook: only the new sheet is left
        "```python\nimport openpyxl\nwb = openpyxl.Workbook()\nwb.active.title = 'Top'\n"
        "wb.active['A1'] = 'Oslo'\nwb.save('stores.xlsx')\n```"
    )
    added = (
        "```python\nimport openpyxl\nwb = openpyxl.load_workbook('stores.xlsx')\n"
        "wb.create_sheet('Top')['A1'] = 'Oslo'\nwb.save('stores.xlsx')\n```"
    )
    model = Drafter([replaced, added])
    task = "Add a sheet Top to stores.xlsx with the store that sold the most in A1 (sorted)."
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    told = model.prompts[1][-1].content
    assert "stores.xlsx: its sheet(s) 'May' are gone, and the task does not ask" in told
    assert told.startswith("Spud put stores.xlsx back as it was before the script")
    assert openpyxl.load_workbook(workspace / "stores.xlsx").sheetnames == ["May", "Top"]


def test_an_office_script_making_a_deck_is_told_how_to_write_one(workspace: Path, store):
    import openpyxl
    from pptx import Presentation

    wb = openpyxl.Workbook()
    wb.active.append(["Week", "Revenue"])
    wb.active.append(["W1", 5])
    wb.save(workspace / "kpis.xlsx")
    script = (
        "```python\nfrom pptx import Presentation\nrows = SHEETS['kpis.xlsx']['Sheet']\n"
        "prs = Presentation()\ns = prs.slides.add_slide(prs.slide_layouts[1])\n"
        "s.shapes.title.text = 'Revenue'\n"
        "s.placeholders[1].text_frame.text = f'Total revenue: {sum(r[1] for r in rows[1:])}'\n"
        "prs.save('deck.pptx')\n```"
    )
    model = Drafter([script])
    task = "Make a one-slide deck deck.pptx from kpis.xlsx: title Revenue, bullet Total revenue."
    result, _ = script_run(workspace, store, model, task, office=True)
    assert result.status == "finished", result.summary
    slide = Presentation(str(workspace / "deck.pptx")).slides[0]
    assert slide.placeholders[1].text_frame.text == "Total revenue: 5"
    ask = model.prompts[0][1].content
    assert "python-pptx" in ask and "prs.slides.add_slide" in ask and "doc.add_table" not in ask


def test_a_task_asking_for_a_script_gets_the_draft_saved_there_and_run(workspace: Path, store):
    task = "Write a Python script hello.py that prints Hello from Spud! and then run python3 hello.py to check it."
    model = Drafter(["It prints the greeting.\n```python\nprint('Hello from Spud!')\n```"])
    result, messages = script_run(workspace, store, model, task)
    assert result.status == "finished", result.summary
    assert (workspace / "hello.py").read_text() == "print('Hello from Spud!')\n"
    ran = [m for m in messages if m.role == "tool" and m.name == "bash"]
    assert "Hello from Spud!" in ran[0].content
    assert "checked and passed: output hello.py; `python3 hello.py`" in result.summary


def test_a_script_asked_for_beside_its_outputs_is_saved_there_and_run(workspace: Path, store):
    (workspace / "names.txt").write_text("b\na\nb\n")
    task = (
        "Write a Python script dedupe.py that reads names.txt and writes unique.txt, then run it."
    )
    script = (
        "It keeps the first of each name.\n```python\nnames = open('names.txt').read().split()\n"
    )
    script += "open('unique.txt', 'w').write('\\n'.join(dict.fromkeys(names)))\n```"
    result, messages = script_run(workspace, store, Drafter([script]), task)
    assert result.status == "finished", result.summary
    assert "dict.fromkeys(names)" in (workspace / "dedupe.py").read_text()
    assert (workspace / "unique.txt").read_text() == "b\na"
    ran = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "bash"]
    assert ran[0].tool_calls[0].arguments["command"] == "python3 dedupe.py"


def test_copies_of_the_tests_and_their_output_in_a_reply_are_left_out(workspace: Path, store):
    reply = (
        "Fixed.\n```python\ndef total(items):\n    return sum(items)\n\n\nclass Cart:\n"
        "    def add(self, sku):\n        self.items[sku] += 1\n\n    def count(self):\n"
        "        return sum(self.items.values())\n```\nThe tests:\n```python\n"
        "from shop import Cart, total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n```\n"
        "Output:\n```\n2 passed in 0.01s\n```"
    )
    result, _ = draft_run(workspace, store, Drafter([reply]))
    assert result.status == "finished", result.summary
    assert "test_total" not in (workspace / "shop.py").read_text()
    assert "from shop import" not in (workspace / "shop.py").read_text()


def test_a_model_set_not_to_draft_acts_by_tool_calls_only(workspace: Path, store):
    model = Drafter([GOOD_TOTAL])
    model.drafts = False  # e.g. the spud-nodraft harness
    result, messages = draft_run(workspace, store, model, max_steps=1)
    assert not model.prompts and not [m for m in messages if m.meta.get("kind") == "draft"]


def test_the_servers_shared_model_drafts_when_its_inner_model_does():
    import threading

    from spud.core.protocols import TextModel
    from spud.service.modelpool import CancellableModel, Cancelled, SerializedModel

    shared = SerializedModel(Drafter([GOOD_TOTAL]), threading.Lock())
    assert isinstance(shared, TextModel) and shared.drafts
    assert "sum(items)" in shared.chat([Message(role="user", content="go")]).message.content
    assert not SerializedModel(ReplayModel([]), None).drafts
    with pytest.raises(Cancelled):
        CancellableModel(shared, stop=lambda: True).chat([Message(role="user", content="go")])


def test_a_chore_that_names_no_file_is_left_to_the_tools(workspace: Path):
    sandbox = Sandbox(SandboxConfig(workspace=workspace))
    task = "Use the time tool to convert 12:00 from UTC to Asia/Tokyo time."
    brief = brief_for(task, workspace, sandbox)
    assert brief is not None and brief.playbook == "files" and brief.opening is None
    (workspace / "notes.txt").write_text("a note\n")
    assert brief_for(task, workspace, sandbox).opening is None  # files it does not speak of


def test_a_chore_over_a_folder_or_a_kind_of_file_gets_a_script_draft(workspace: Path):
    sandbox = Sandbox(SandboxConfig(workspace=workspace))
    (workspace / "logs").mkdir()
    (workspace / "logs" / "app-1.log").write_text("ERROR disk full\nINFO ok\n")
    for task in (
        "Count the ERROR lines in each file of the logs folder and print the totals.",
        "Merge every LOG file into one, oldest line first.",
    ):
        brief = brief_for(task, workspace, sandbox)
        assert brief is not None and brief.playbook == "files"
        assert brief.opening is not None and "logs/app-1.log" in brief.opening.shown


def timed_agent(workspace: Path, store, model, max_seconds: float, max_steps: int = 10):
    """An agent on the shop task whose run ends at max_seconds, and its session."""
    (workspace / "shop.py").write_text(MODULE)
    (workspace / "test_shop.py").write_text(TESTS)
    sandbox = Sandbox(SandboxConfig(workspace=workspace))
    brief = brief_for(TASK, workspace, sandbox)
    agent = Agent(
        model,
        [t for t in coding_tools(workspace, sandbox) if t.name in brief.tools],
        store,
        limits=Limits(max_steps=max_steps, max_seconds=max_seconds),
        verifier=brief.verifier,
        opening=brief.opening,
    )
    return agent, agent.start(TASK, str(workspace), "system" + brief.prompt, brief.context)


def test_drafts_stop_at_the_time_limit_before_another_model_call(
    workspace: Path, store, monkeypatch: pytest.MonkeyPatch
):
    import spud.core.agent as agent_module

    clock = [0.0]  # the run's clock, moved on only by the drafts
    monkeypatch.setattr(agent_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    class Slow(Drafter):
        def chat(self, messages, max_tokens=2048, temperature=None, until_block=False):
            clock[0] += 10.0  # a draft that takes the whole time left
            return super().chat(messages, max_tokens, temperature, until_block)

    model = Slow(["No code here."] * 5)
    agent, sid = timed_agent(workspace, store, model, 5, 10)
    result = agent.run(sid)
    assert result.status == "limit:time"
    assert len(model.prompts) == 1  # the second draft was never asked for


def test_drafts_that_end_near_the_limit_do_not_hand_over_to_the_loop(
    workspace: Path, store, monkeypatch: pytest.MonkeyPatch
):
    import spud.core.agent as agent_module

    clock = [0.0]
    monkeypatch.setattr(agent_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    class Timed(Drafter):
        """Each draft takes 10 s; the first fixes total, the others change nothing."""

        def chat(self, messages, max_tokens=2048, temperature=None, until_block=False):
            clock[0] += 10.0
            reply = super().chat(messages, max_tokens, temperature, until_block)
            reply.usage = Usage(prompt_tokens=100, completion_tokens=20, seconds=10.0)
            return reply

    def run(max_seconds: float):
        clock[0] = 0.0
        model = Timed(
            [GOOD_TOTAL], [{"calls": [{"name": "finish", "arguments": {"summary": "x"}}]}]
        )
        agent, sid = timed_agent(workspace, store, model, max_seconds, 30)
        return agent.run(sid), model

    spent = 10.0 * (CodeDraft.rounds + 1)  # the drafts' time before they stop
    result, model = run(spent + 15)  # 15 s left: under two drafts' time
    assert (
        result.status == "limit:time" and "not enough for the loop's first step" in result.summary
    )
    assert model.loop_prompts == []
    result, model = run(spent + 25)  # 25 s left: the loop has its turn
    assert model.loop_prompts  # its finish is refused: test_cart still fails


def test_a_draft_is_cut_to_the_tokens_the_time_left_allows(
    workspace: Path, store, monkeypatch: pytest.MonkeyPatch
):
    import spud.core.agent as agent_module

    clock = [0.0]
    monkeypatch.setattr(agent_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    asked: list[int] = []

    class Paced(Drafter):
        """10 tokens a second: each draft reports 200 tokens in 20 s."""

        def chat(self, messages, max_tokens=2048, temperature=None, until_block=False):
            asked.append(max_tokens)
            clock[0] += 20.0
            reply = super().chat(messages, max_tokens, temperature, until_block)
            reply.usage = Usage(prompt_tokens=100, completion_tokens=200, seconds=20.0)
            return reply

    model = Paced(["No code here."] * 3)
    agent, sid = timed_agent(workspace, store, model, 50, 10)
    assert agent.run(sid).status == "limit:time"
    # the first draft at the playbook's length; then 30 s left, then 10 s, at 10 tokens a second
    assert asked == [2048, 300, 100]


def test_a_reply_that_starts_in_its_fence_is_summed_up_by_its_opening_comment():
    from spud.playbooks.draft import said

    assert said("```python\n# Counts the lines of notes.txt.\nprint(3)\n```") == (
        "Counts the lines of notes.txt."
    )
    assert said("It counts.\n```python\n# not this\n```") == "It counts."
    assert said("```python\nprint(3)\n```") == ""


def test_a_reply_of_comments_only_is_followed_by_a_request_for_the_code(workspace: Path, store):
    reasons = "```python\n# total raises: it must add the items.\n```"
    model = Drafter([reasons, GOOD_TOTAL + "\n" + GOOD_CART])
    result, _ = draft_run(workspace, store, model)
    assert result.status == "finished", result.summary
    assert model.prompts[1][-1].content.startswith("Now write that code")
    assert model.prompts[1][-2].content == reasons  # the same chat, its prefix cached


def test_draft_replies_that_led_to_no_step_are_kept_in_a_later_steps_meta(workspace: Path, store):
    """A reply sent back, and the opening's last replies that led to nothing, are stored with
    the next step (the opening's own, else the loop's first) under "unused"."""
    from spud.core.messages import ToolCall

    def opening(model, act) -> None:
        model.chat([Message(role="user", content="a")])  # sent back, say
        kept = model.chat([Message(role="user", content="b")]).message.content
        act(ToolCall(name="bash", arguments={"command": "true"}), {"kind": "draft", "draft": kept})
        model.chat([Message(role="user", content="c")])  # an answer with no ANSWER line, say

    finish = {"calls": [{"name": "finish", "arguments": {"summary": "done"}}]}
    model = Drafter(["refused", "ran", "said nothing", "said nothing"], [finish])
    sandbox = Sandbox(SandboxConfig(workspace=workspace))
    agent = Agent(model, coding_tools(workspace, sandbox), store, opening=opening)
    sid = agent.start("do it", str(workspace), "system")
    assert agent.run(sid).status == "finished"
    steps = [m for m in store.messages(sid) if m.role == "assistant"]
    assert steps[0].meta["draft"] == "ran" and steps[0].meta["unused"] == ["refused"]
    assert steps[1].tool_calls[0].name == "finish" and steps[1].meta["unused"] == ["said nothing"]
