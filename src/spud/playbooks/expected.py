"""A passing script's output held against its first lines as the model works them out by hand."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spud.core.messages import Message, ModelReply
from spud.core.protocols import TextModel

# A 1.5B's passing scripts often make the asked-for file with the wrong content, and shown it
# the model did not see what was wrong (a review, 5 December). But asked to write the file by
# hand it wrote what the task asked (csv-to-json's prices as numbers, which its script left as
# text). So the first lines are worked out by hand, without a script, and compared field by
# field with what the script made; a difference is a repair request that names it, and a
# passing draft that agrees with the hand stands before one that does not (agreement of two
# ways of solving, as in CodeT: Chen et al., 2022). On ten dev chores (6 December) the hand was
# right 2 times in 5 and changed no outcome, at twice the minutes: it is on at effort medium
# and high only (Harness.by_hand).
HAND_ASK = (
    "Do not write a script. Work out by hand, from the task's rules and the input shown "
    "above, {what} of {path}, exactly as the finished file holds {it}, and write {it} in one "
    "``` block, nothing else."
)
HAND_REPAIR = (
    "The script ran and made {path}. Worked out by hand from the task's rules and the input, "
    "{what} of {path} {are}:\n```\n{hand}\n```\nThe script wrote:\n```\n{made}\n```\n"
    "Where they differ:\n{diff}\n\nWhere the script does not follow the task's rules, correct "
    "it; it computes every value from the input files and writes none of them in. Write the "
    "corrected complete script in one ```python block whose first line is a comment on what "
    "was wrong."
)
EARLIER = (
    "An earlier script made {path} differently from the task's rules, worked out by hand:\n"
    "{diff}\nWrite one that avoids it; it computes every value from the input files."
)
# Shown the hand's first record, a 1.5B wrote that record into its script as a literal (and
# skipped the first row): a draft whose code holds the shown inputs' values is not agreeing.
COPIED = (
    "- the script writes values of the input into its code ({values}) instead of reading them "
    "from the files"
)
PATH = re.compile(r"[\w-]*[./][\w./-]*")  # a file's path or a number: read, not copied
COPIES = 2  # distinct copied values that make a script a copy, not a reader
HAND_TOKENS = 250  # a record or two lines; a 1.5B asked for one element wrote them all
LINES = 2  # a header and one record: more is arithmetic a small model gets wrong by hand
TEXT = {".txt", ".csv", ".tsv", ".log", ".md"}
FENCE = re.compile(r"```([\w+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
SCRIPT = re.compile(r"^\s*(?:import \w|from [\w.]+ import |def \w+\(|with open\()", re.MULTILINE)
SHOWN = 600  # characters of each side shown in a repair request
KINDS = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "an object",
}


@dataclass
class Expected:
    """The head of one output file as the model worked it out by hand."""

    path: str
    kind: str  # "json" (the first element of an array), "csv" or "lines"
    hand: Any  # the parsed head: a JSON value, rows of cells, or lines

    @property
    def what(self) -> str:
        if self.kind == "json":
            return "the first element of the JSON array"
        return f"the first {LINES} lines"


def target(workspace: Path, outputs: list[str]) -> tuple[str, str] | None:
    """The first asked-for output the script made that a hand can write: a JSON array's first
    element, or a text file's first lines; with its kind."""
    for rel in outputs:
        path = workspace / rel
        suffix = path.suffix.lower()
        if not path.is_file() or (suffix not in TEXT and suffix != ".json"):
            continue
        made = _made(path, "json" if suffix == ".json" else "lines")
        if suffix == ".json" and isinstance(made, list) and made:
            return rel, "json"
        if suffix in TEXT and made:
            return rel, "csv" if suffix in {".csv", ".tsv"} else "lines"
    return None


def ask(
    model: TextModel,
    system: Message,
    prompt: str,
    workspace: Path,
    outputs: list[str],
    task: str = "",
) -> tuple[Expected | None, ModelReply | None]:
    """The head of the first fitting output, as the model works it out by hand, and the reply
    (None when no output fits); no Expected when the reply holds nothing to compare, or only
    lines of the task's own text (asked for report.txt, a 1.5B gave back the task's example
    layout, "Orders: 12", whose numbers the task calls placeholders)."""
    found = target(workspace, outputs)
    if found is None:
        return None, None
    rel, kind = found
    what = Expected(rel, kind, None).what
    it = "it" if kind == "json" else "them"
    text = f"{prompt}\n\n{HAND_ASK.format(what=what, path=rel, it=it)}"
    reply = model.chat([system, Message(role="user", content=text)], max_tokens=HAND_TOKENS)
    hand = _parsed(_block(reply.message.content), kind)
    if hand and kind != "json" and all(_line(row) in task for row in hand if _line(row)):
        hand = None
    return (Expected(rel, kind, hand) if hand else None), reply


def _line(row: list[str] | str) -> str:
    return (",".join(row) if isinstance(row, list) else row).strip()


def difference(expected: Expected, workspace: Path) -> str:
    """How the output's head differs from the hand's, a line each; empty when they agree."""
    made = _made(workspace / expected.path, expected.kind)
    if expected.kind == "json":
        first = made[0] if isinstance(made, list) and made else None
        return "\n".join(_json_diff(expected.hand, first))
    rows = made or []
    out = []
    header = rows[0] if expected.kind == "csv" and rows else None
    for n, want in enumerate(expected.hand):
        got = rows[n] if n < len(rows) else None
        if expected.kind == "csv" and got is not None and want != got:
            out += _row_diff(n + 1, want, got, header if n else None)
        elif got != want:
            shown = "(nothing)" if got is None else repr(got)
            out.append(f"- line {n + 1}: the script wrote {shown}, by hand {want!r}")
        if out:
            break  # the first difference; a repair of it may fix the rest
    return "\n".join(out)


def repair(expected: Expected, workspace: Path, diff: str) -> str:
    """The request to correct a script whose output differs from the hand's head."""
    kind = expected.kind
    return HAND_REPAIR.format(
        path=expected.path,
        what=expected.what,
        are="is" if kind == "json" else "are",
        hand=_shown(expected.hand, kind),
        made=_shown(_head(_made(workspace / expected.path, kind), kind), kind),
        diff=diff,
    )


def copied(script: str, shown: str, task: str) -> list[str]:
    """The script's string literals that are values of the shown inputs, not words of the
    task (names like a column's are words, and paths are where the inputs are; a value has
    a space, a digit or a sign); empty below COPIES of them."""
    try:
        tree = ast.parse(script)
    except SyntaxError:
        return []
    found = {
        node.value.strip()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    values = sorted(
        v
        for v in found
        if len(v) >= 4
        and not v.isidentifier()
        and not PATH.fullmatch(v)
        and v in shown
        and v not in task
    )
    return values if len(values) >= COPIES else []


def _made(path: Path, kind: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return _parsed(text, kind, whole=True)


def _parsed(text: str, kind: str, whole: bool = False) -> Any:
    """A JSON value (a hand's array gives its first element), rows of cells or lines;
    None when the text holds none."""
    if kind == "json":
        start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
        if start < 0:
            return None
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            if whole or text[start] != "[":
                return None
            # a hand that wrote the whole array, cut short: its first element
            return _parsed(text[start + 1 :], kind)
        if whole:
            return value
        return value[0] if isinstance(value, list) and value else value or None
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").strip("\n").split("\n")]
    lines = [line for line in lines[: LINES if not whole else None]]
    if not any(lines):
        return None
    if kind == "csv":
        dialect = "excel-tab" if "\t" in lines[0] and "," not in lines[0] else "excel"
        return [row for row in csv.reader(io.StringIO("\n".join(lines)), dialect)]
    return lines


def _head(made: Any, kind: str) -> Any:
    if kind == "json":
        return made[0] if isinstance(made, list) and made else made
    return (made or [])[:LINES]


def _block(reply: str) -> str:
    """The reply's first fenced block; empty without one, or when it is a script after all."""
    found = FENCE.search(reply)
    if found is None or found[1].lower() in {"python", "python3", "py"}:
        return ""
    return "" if SCRIPT.search(found[2]) else found[2]


def _shown(value: Any, kind: str) -> str:
    if kind == "json":
        text = json.dumps(value, ensure_ascii=False)
    elif kind == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(value)
        text = buffer.getvalue().rstrip("\n")
    else:
        text = "\n".join(value)
    return text[:SHOWN]


def _json_diff(hand: Any, made: Any) -> list[str]:
    if not isinstance(hand, dict) or not isinstance(made, dict):
        if _same(hand, made):
            return []
        return [f"- the script wrote {_typed(made)}, by hand {_typed(hand)}"]
    out = []
    for key, want in hand.items():
        if key not in made:
            out.append(f"- {json.dumps(key)}: the script left it out; by hand {_typed(want)}")
        elif not _same(want, made[key]):
            out.append(
                f"- {json.dumps(key)}: the script wrote {_typed(made[key])}, by hand {_typed(want)}"
            )
    extra = [k for k in made if k not in hand]
    out += [f"- {json.dumps(k)}: the script added it; the hand has no such key" for k in extra]
    return out


def _row_diff(line: int, want: list[str], got: list[str], header: list[str] | None) -> list[str]:
    if len(want) != len(got):
        wrote = f"the script wrote {len(got)} fields {got!r}"
        return [f"- line {line}: {wrote}, by hand {len(want)} {want!r}"]
    out = []
    for n, (w, g) in enumerate(zip(want, got, strict=True)):
        if w.strip() != g.strip():
            name = header[n] if header and n < len(header) else f"field {n + 1}"
            out.append(f"- line {line}, {name}: the script wrote {g!r}, by hand {w!r}")
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, kinds included: 4.5 is not "4.5" and true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) < 1e-9
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _typed(value: Any) -> str:
    kind = KINDS.get(type(value), "null")
    return f"{json.dumps(value, ensure_ascii=False)} ({kind})"
