"""The raw edit format and grammar-only argument limits: grammar, parsing, rendering, choices."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import llama_cpp
import openpyxl
import pytest

from spud.browser_policy import BrowserPolicy
from spud.config import Settings
from spud.core.agent import SYSTEM_PROMPT, Finish, Limits
from spud.core.errors import FormatError
from spud.core.live import MAX_CHOICES
from spud.core.messages import Message, ToolCall
from spud.core.tooling import tool_spec, validate_args, with_choices
from spud.models.edit_format import format_call, parse_raw_calls
from spud.models.local import calls_gbnf, render_chatml
from spud.models.registry import REGISTRY, model_path
from spud.models.toolcall import parse_calls
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.service.sessions import SessionService
from spud.tools.browser.tools import BrowserClick, browser_tools
from spud.tools.files import EditFile, ListFiles, ReadFile, Search, WriteFile
from spud.tools.office.sheets import SheetRead, SheetWrite
from spud.tools.office.tools import office_tools
from spud.tools.shell import coding_tools

# -- a small GBNF recogniser (the subset llama.cpp's converter and Spud emit) ----------------


def _parse_gbnf(text: str) -> dict[str, object]:
    rules: dict[str, object] = {}
    for line in text.splitlines():
        if "::=" in line:
            name, body = line.split("::=", 1)
            rules[name.strip()] = _Expr(body.strip()).alternation()
    return rules


class _Expr:
    def __init__(self, src: str) -> None:
        self.s, self.i = src, 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def alternation(self) -> object:
        alts = [self.sequence()]
        while self.i < len(self.s) and self.s[self.i] == "|":
            self.i += 1
            alts.append(self.sequence())
        return ("alt", alts)

    def sequence(self) -> object:
        items = []
        self.ws()
        while self.i < len(self.s) and self.s[self.i] not in "|)":
            items.append(self.postfix(self.primary()))
            self.ws()
        return ("seq", items)

    def primary(self) -> object:
        c = self.s[self.i]
        if c == '"':
            end = self.i + 1
            while self.s[end] != '"':
                end += 2 if self.s[end] == "\\" else 1
            lit = json.loads(self.s[self.i : end + 1].replace("\\x", "\\u00"))
            self.i = end + 1
            return ("lit", lit)
        if c == "[":
            end = self.i + 1
            while self.s[end] != "]":
                end += 2 if self.s[end] == "\\" else 1
            body = self.s[self.i + 1 : end].replace("\\x", "\\u00")
            self.i = end + 1
            neg = body.startswith("^")
            pattern = "[" + ("^" if neg else "") + body[neg:].replace('"', '\\"') + "]"
            return ("cls", re.compile(pattern))
        if c == "(":
            self.i += 1
            inner = self.alternation()
            self.i += 1  # ")"
            return inner
        m = re.compile(r"[a-zA-Z0-9-]+").match(self.s, self.i)
        assert m, self.s[self.i :]
        self.i = m.end()
        return ("ref", m.group())

    def postfix(self, node: object) -> object:
        if self.i < len(self.s) and self.s[self.i] in "*+?":
            op = self.s[self.i]
            self.i += 1
            return ("rep", node, {"*": 0, "+": 1, "?": 0}[op], {"?": 1}.get(op))
        m = re.compile(r"\{(\d+)(,(\d*))?\}").match(self.s, self.i)
        if m:
            self.i = m.end()
            lo = int(m.group(1))
            hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
            return ("rep", node, lo, hi)
        return node


def accepts(gbnf: str, text: str) -> bool:
    """Whether the whole text is derivable from the grammar's root rule."""
    rules = _parse_gbnf(gbnf)
    sys.setrecursionlimit(20000)

    @cache
    def rule_ends(name: str, pos: int) -> frozenset[int]:
        return frozenset(ends(rules[name], pos))

    def ends(node, pos: int) -> set[int]:  # noqa: ANN001
        kind = node[0]
        if kind == "lit":
            return {pos + len(node[1])} if text.startswith(node[1], pos) else set()
        if kind == "cls":
            return {pos + 1} if pos < len(text) and node[1].fullmatch(text[pos]) else set()
        if kind == "ref":
            return set(rule_ends(node[1], pos))
        if kind == "alt":
            return set().union(*(ends(a, pos) for a in node[1]))
        if kind == "seq":
            cur = {pos}
            for item in node[1]:
                cur = set().union(*(ends(item, p) for p in cur)) if cur else set()
            return cur
        _, item, lo, hi = node
        out, cur, seen, n = (set() if lo else {pos}), {pos}, {pos}, 0
        while cur and (hi is None or n < hi):
            cur = set().union(*(ends(item, p) for p in cur))
            n += 1
            if hi is None:
                cur -= seen
                seen |= cur
            if n >= lo:
                out |= cur
        return out

    return len(text) in rule_ends("root", 0)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text("X = 1\n")
    return tmp_path


def _tools(ws: Path) -> list:
    return [ReadFile(ws), ListFiles(ws), Search(ws), WriteFile(ws), EditFile(ws), Finish()]


def _specs(ws: Path):
    return [tool_spec(t) for t in _tools(ws)]


def _call(name: str, **args: object) -> str:
    return json.dumps({"name": name, "arguments": args})


WRITE = (
    _call("write_file", path="calc.py")
    + '\n```python\ndef add(a, b):\n    """Sum {a} and "b" \\ done."""\n'
    + "    return a + b  # ```python is fine inside\n```"
)
EDIT = (
    _call("edit_file", path="calc.py")
    + "\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE"
    + "\n<<<<<<< SEARCH\ndef add(a, b):\n=======\ndef add(a: int, b: int):\n>>>>>>> REPLACE"
)


# -- the grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        WRITE,
        EDIT,
        _call("read_file", path="calc.py") + "\n" + WRITE,
        _call("list_files", pattern="**/*.py"),
        _call("read_file", path="calc.py") + "\n</tool_call>\n<tool_call>\n" + EDIT,
        _call("write_file", path="empty.txt") + "\n```\n```",
        _call("finish", summary="Fixed add."),
    ],
)
def test_raw_grammar_accepts_well_formed_replies(ws: Path, reply: str):
    assert accepts(calls_gbnf(_specs(ws), "raw"), reply)
    only_edits = [s for s in _specs(ws) if s.name in ("write_file", "edit_file")]
    assert accepts(calls_gbnf(only_edits, "raw"), EDIT)


@pytest.mark.parametrize(
    "reply",
    [
        _call("write_file", path="calc.py", content="x = 1\n"),  # content belongs in the block
        _call("write_file", path="calc.py"),  # no block at all
        _call("write_file", path="**/*.py") + "\n```\nx = 1\n```",  # a glob is not a path
        _call("write_file", path="calc.py (first 12 lines):") + "\n```\nx = 1\n```",
        _call("write_file", path="a.py") + "\n```\nx = 1\n```\nmore text after the fence",
        _call("edit_file", path="calc.py") + "\n<<<<<<< SEARCH\nx\n=======\ny\n",  # unclosed
        _call("edit_file", path="calc.py") + "\n<<<<<<< SEARCH\n=======\ny\n>>>>>>> REPLACE",
        _call("edit_file", path="calc.py", old="a", new="b"),
        _call("read_file", path="p" * 201),
        WRITE + "\n" + _call("finish", summary="done"),  # a write or an edit ends the reply
        EDIT + "\n</tool_call>\n<tool_call>\n" + _call("read_file", path="calc.py"),
        _call("search", query="x" * 201),
    ],
)
def test_raw_grammar_rejects_malformed_replies(ws: Path, reply: str):
    assert not accepts(calls_gbnf(_specs(ws), "raw"), reply)


def test_json_format_keeps_content_inside_the_arguments(ws: Path):
    gbnf = calls_gbnf(_specs(ws), "json")
    assert accepts(gbnf, _call("write_file", path="a.py", content="x = {'a': \"b\"}\n"))
    assert not accepts(gbnf, _call("write_file", path="a.py") + "\n```\nx = 1\n```")


def test_bounded_lengths_and_refs(ws: Path):
    specs = [tool_spec(BrowserClick(None)), tool_spec(SheetWrite(ws))]  # type: ignore[arg-type]
    gbnf = calls_gbnf(specs, "raw")
    assert accepts(gbnf, _call("browser_click", ref="e12"))
    assert not accepts(gbnf, _call("browser_click", ref="e" + "0" * 40))  # the runaway ref
    assert not accepts(gbnf, _call("browser_click", ref="submit button"))
    ok = _call("sheet_write", path="a.xlsx", cells={"B5": "=SUM(B2:B4)", "$C$1": 3})
    assert accepts(gbnf, ok)
    assert not accepts(gbnf, _call("sheet_write", path="a.xlsx", cells={"total": 3}))
    files = calls_gbnf(_specs(ws), "raw")
    assert accepts(files, _call("list_files", pattern="p" * 200))
    # integers within their range's digits (bash's timeout_s: 1 to 3600)
    shell = [t for t in coding_tools(ws, Sandbox(SandboxConfig(workspace=ws))) if t.name == "bash"]
    plain = calls_gbnf([tool_spec(t) for t in shell], "json")
    assert accepts(plain, _call("bash", command="ls", timeout_s=120))
    assert not accepts(plain, _call("bash", command="ls", timeout_s=10**15))
    assert not accepts(plain, _call("bash", command="ls", timeout_s=0))
    assert accepts(files, _call("read_file", path="a.py", start_line=1200000))
    assert not accepts(files, _call("list_files", pattern="p" * 201))
    assert accepts(files, _call("read_file", path="p" * 200))
    bash = calls_gbnf(
        [tool_spec(t) for t in coding_tools(ws, Sandbox(SandboxConfig(workspace=ws)))]
    )
    assert accepts(bash, _call("bash", command="python -m pytest -q"))
    assert not accepts(bash, _call("bash", command="echo 'a' | sed 's/a/b/g' " * 50))
    # a summary that repeats one sentence to the output cap
    assert accepts(files, _call("finish", summary="Wrote invoices.csv with 5 rows."))
    assert not accepts(files, _call("finish", summary="The script was not able to finish. " * 20))


def test_llama_cpp_parses_the_grammars_of_every_tool_set(ws: Path):
    """llama.cpp's own GBNF parser (a vocabulary-only load, no weights) takes both formats."""
    gguf = model_path(REGISTRY["qwen2.5-coder-0.5b"], Settings().model_cache)
    if not gguf.is_file():
        pytest.skip("the 0.5B model is not installed")
    tools = coding_tools(ws, Sandbox(SandboxConfig(workspace=ws))) + office_tools(ws)
    tools += [*browser_tools(ws, BrowserPolicy()), Finish()]
    specs = with_choices([tool_spec(t) for t in tools], {t.name: t for t in tools}, [])
    llm = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    for fmt in ("raw", "json"):
        sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, calls_gbnf(specs, fmt).encode(), b"root"
        )
        assert sampler, fmt
        llama_cpp.llama_sampler_free(sampler)
    bad = llama_cpp.llama_sampler_init_grammar(vocab, b'root ::= "a" undefined-rule', b"root")
    assert not bad  # the check can fail


# -- parsing -------------------------------------------------------------------------------


def test_write_block_becomes_the_content_argument(ws: Path):
    (call,) = parse_raw_calls(WRITE, _specs(ws))
    assert call.name == "write_file" and call.arguments["path"] == "calc.py"
    assert call.arguments["content"] == (
        'def add(a, b):\n    """Sum {a} and "b" \\ done."""\n'
        "    return a + b  # ```python is fine inside\n"
    )


def test_search_replace_blocks_become_exact_edits_that_run(ws: Path):
    calls = parse_raw_calls(EDIT, _specs(ws))
    assert [c.arguments for c in calls] == [
        {"path": "calc.py", "old": "    return a - b", "new": "    return a + b"},
        {"path": "calc.py", "old": "def add(a, b):", "new": "def add(a: int, b: int):"},
    ]
    tool = EditFile(ws)
    for c in calls:
        assert tool.run(validate_args(tool, c.arguments)).ok
    assert (ws / "calc.py").read_text() == "def add(a: int, b: int):\n    return a + b\n"
    again = tool.run(validate_args(tool, calls[0].arguments))  # edit_file's own errors stay
    assert not again.ok and "old text not found in calc.py" in again.output


def test_several_calls_in_one_reply(ws: Path):
    reply = _call("read_file", path="calc.py") + "\n</tool_call>\n<tool_call>\n" + WRITE
    calls = parse_raw_calls(reply + "\n" + _call("finish", summary="done"), _specs(ws))
    assert [c.name for c in calls] == ["read_file", "write_file", "finish"]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (_call("write_file", path="a.py"), "starting with a line ```"),
        (_call("write_file", path="a.py") + "\n```\nx = 1\n", "no closing ``` line"),
        (_call("edit_file", path="a.py") + "\nold\nnew", "a line <<<<<<< SEARCH"),
        (_call("edit_file", path="a.py") + "\n<<<<<<< SEARCH\nx\n=======\ny", ">>>>>>> REPLACE"),
        (_call("nope", path="a.py"), "no tool named 'nope'"),
    ],
)
def test_format_errors_say_what_is_missing_without_placeholders(ws: Path, reply, problem):
    with pytest.raises(FormatError) as info:
        parse_raw_calls(reply, _specs(ws))
    assert problem in info.value.problem and info.value.raw == reply
    assert not re.search(r"your_|_here|<path>|\.\.\.", info.value.problem)


def test_a_bare_fence_line_ends_the_file(ws: Path):
    """Decided: a line of exactly ``` closes the block (```lang lines inside are kept)."""
    text = _call("write_file", path="README.md") + "\n```\n# Use\n```bash\nrun\n```\n"
    with pytest.raises(FormatError):  # the text after the first bare fence is not a call
        parse_raw_calls(text + "more\n```", _specs(ws))
    (call,) = parse_raw_calls(text.rstrip("\n"), _specs(ws))
    assert call.arguments["content"] == "# Use\n```bash\nrun\n"


# -- rendering -----------------------------------------------------------------------------


def test_earlier_turns_render_exactly_as_produced(ws: Path):
    specs = _specs(ws)
    msgs = [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content="fix")]
    before = render_chatml(msgs, specs, edit_format="raw")
    calls = parse_raw_calls(EDIT, specs)
    msgs.append(Message(role="assistant", tool_calls=calls, meta={"raw": EDIT}))
    msgs += [Message(role="tool", tool_call_id=c.id, content="edited") for c in calls]
    after = render_chatml(msgs, specs, edit_format="raw")
    assert after.startswith(before)
    assert f"<|im_start|>assistant\n<tool_call>\n{EDIT}\n</tool_call><|im_end|>" in after


def test_calls_without_raw_text_render_in_the_raw_format(ws: Path):
    specs = {s.name: s for s in _specs(ws)}
    write = ToolCall(name="write_file", arguments={"path": "a.py", "content": "x = '{}'\n"})
    edit = ToolCall(name="edit_file", arguments={"path": "a.py", "old": "x", "new": "y"})
    for call in (write, edit):
        text = format_call(call, specs[call.name])
        (back,) = parse_raw_calls(text, list(specs.values()))
        assert back.arguments == call.arguments
        assert '"content"' not in text and '"old"' not in text


def test_prompt_describes_the_formats_concretely(ws: Path):
    specs = _specs(ws)
    msgs = [Message(role="system", content=SYSTEM_PROMPT)]
    raw = render_chatml(msgs, specs, edit_format="raw")
    assert "<<<<<<< SEARCH" in raw and ">>>>>>> REPLACE" in raw and "a line ```" in raw
    assert '"content"' not in raw and '"old"' not in raw  # not in the write/edit schemas
    assert not re.search(r"your_|_here|<path>|/path/to", raw)
    old = render_chatml(msgs, specs, edit_format="json")
    assert '"content"' in old and "<<<<<<< SEARCH" not in old


# -- live choices --------------------------------------------------------------------------


def test_live_choices_narrow_the_grammar_but_not_the_prompt(ws: Path):
    tools = {t.name: t for t in _tools(ws)}
    specs = _specs(ws)
    live = with_choices(specs, tools, [])
    read = next(s for s in live if s.name == "read_file")
    assert read.choices == {"path": ["calc.py", "pkg/util.py"]}
    msgs = [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content="x")]
    assert render_chatml(msgs, live, edit_format="raw") == render_chatml(
        msgs, specs, edit_format="raw"
    )
    gbnf = calls_gbnf(live, "raw")
    assert accepts(gbnf, _call("read_file", path="pkg/util.py"))
    assert not accepts(gbnf, _call("read_file", path="calc.txt"))  # not a file there
    assert accepts(gbnf, _call("write_file", path="calc.txt") + "\n```\n```")  # new files ok
    (ws / "new.py").write_text("")
    again = with_choices(specs, tools, [])
    assert "new.py" in next(s for s in again if s.name == "edit_file").choices["path"]


def test_too_many_files_fall_back_to_the_free_path(ws: Path):
    for i in range(MAX_CHOICES + 1):
        (ws / f"f{i}.txt").write_text("")
    live = with_choices(_specs(ws), {t.name: t for t in _tools(ws)}, [])
    assert all(not s.choices for s in live)
    assert accepts(calls_gbnf(live, "raw"), _call("read_file", path="anything.txt"))


def test_refs_come_from_the_latest_snapshot_and_sheets_from_workbooks(ws: Path):
    wb = openpyxl.Workbook()
    wb.active.title = "Sales"
    wb.create_sheet("Costs")
    wb.save(ws / "book.xlsx")
    page = '- button "Buy" [ref=e4]\n- link "Home" [ref=e7]'
    msgs = [
        Message(role="tool", name="browser_open", content='- link "Old" [ref=e1]'),
        Message(role="tool", name="browser_snapshot", content=page),
        Message(role="tool", name="browser_click", content="clicked e4: no navigation"),
    ]
    tools = {"browser_click": BrowserClick(None), "sheet_read": SheetRead(ws)}  # type: ignore[arg-type]
    specs = with_choices([tool_spec(t) for t in tools.values()], tools, msgs)
    assert specs[0].choices == {"ref": ["e4", "e7"]}
    assert specs[1].choices == {"sheet": ["Sales", "Costs"]}
    gbnf = calls_gbnf(specs, "raw")
    assert accepts(gbnf, _call("browser_click", ref="e7"))
    assert not accepts(gbnf, _call("browser_click", ref="e1"))
    assert accepts(gbnf, _call("sheet_read", path="book.xlsx", sheet="Costs"))
    assert not accepts(gbnf, _call("sheet_read", path="book.xlsx", sheet="Sheet9"))


# -- the real model ------------------------------------------------------------------------


@pytest.mark.model
def test_embedded_model_fixes_a_bug_through_the_code_playbook(tmp_path: Path):
    """The default (JSON) format on the 0.5B: the code playbook shows the code and the failing
    test, and its check reruns the tests before the run may finish. (With raw blocks the 0.5B
    wrote `def write_file(...)` into calc.py here: docs/eval.md.)"""
    settings = Settings(
        home=tmp_path / "home", context_window=4096, limits=Limits(max_steps=6, max_seconds=900)
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (ws / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    svc = SessionService(settings)
    model = svc.model("qwen2.5-coder-0.5b")
    assert getattr(model, "edit_format", None) == "json"
    agent = svc.agent(model, ws, auto_approve=True)
    sid = svc.start(agent, "In calc.py replace 'a - b' by 'a + b'.", ws)
    result = svc.run(agent, sid)
    out = subprocess.run(
        [sys.executable, "-c", "from calc import add; print(add(2, 3))"],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    replies = [str(m.tool_calls) for m in svc.messages(sid) if m.role == "assistant"]
    assert out.stdout.strip() == "5", "\n---\n".join(replies)
    tool_results = [m.content for m in svc.messages(sid) if m.role == "tool"]
    assert any("[tests after this change: 1 passed" in t for t in tool_results), result.summary
    if result.status == "finished":  # it may also stop at the step limit after the fix
        assert "checked and passed: `python -m pytest -q`" in result.summary


def test_calls_per_reply_are_capped_by_max_calls(ws: Path):
    two = _call("read_file", path="calc.py") + "\n" + WRITE
    three = "\n".join(_call("read_file", path=p) for p in ("calc.py", "a.py", "b.py"))
    for fmt in ("raw", "json"):
        one = calls_gbnf(_specs(ws), fmt, max_calls=1)
        assert accepts(one, _call("read_file", path="calc.py"))
        assert not accepts(one, three)
        assert accepts(calls_gbnf(_specs(ws), fmt, max_calls=4), three)
    assert not accepts(calls_gbnf(_specs(ws), "raw", max_calls=1), two)
    assert accepts(calls_gbnf(_specs(ws), "raw", max_calls=2), two)


def test_a_line_starting_with_a_fence_inside_a_file_block_is_refused(ws: Path):
    """The 0.5B wrote ```python inside the block and closed it with ```. and never stopped."""
    gbnf = calls_gbnf(_specs(ws), "raw")
    head = _call("write_file", path="hello.py")
    assert accepts(gbnf, head + '\n```\nprint("hi")  # ```python inside a line\n```')
    assert not accepts(gbnf, head + '\n```\n```python\nprint("hi")\n```')
    assert not accepts(gbnf, head + '\n```\nprint("hi")\n```.\nprint("hi")\n```')


def test_a_raw_newline_inside_a_string_is_read_as_the_grammar_allows(ws: Path):
    """The grammar's string characters take a raw newline; three replies with one inside a
    bash command ended a run as format_errors ("Invalid control character")."""
    specs = [tool_spec(t) for t in coding_tools(ws, Sandbox(SandboxConfig(workspace=ws)))]
    reply = '{"name": "bash", "arguments": {"command": "echo a\nb"}}'
    assert accepts(calls_gbnf(specs, "json"), reply)
    for calls in (parse_raw_calls(reply, specs), parse_calls(reply, specs)):
        assert calls[0].arguments["command"] == "echo a\nb"
