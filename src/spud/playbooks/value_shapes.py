"""How the task writes values (decimals, date and time formats): checks on the outputs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from spud.playbooks.base import workspace_files
from spud.playbooks.task_shapes import file_check, separator

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4}
# "rounded to 2 decimals", "with exactly 2 decimals", "to two decimal places", "one decimal"
DECIMALS = re.compile(
    r"\b(exactly )?(\d|one|two|three|four)\s+decimal(?:s| places?)?\b(?! separator)", re.IGNORECASE
)
# `YYYY-MM-DD HH:MM:SS`, `DD/MM/YYYY`, `HH:MM`: a date or time written as its digits' places
PLACES = r"(?:YYYY|YY|MM|DD|HH|hh|mm|SS|ss)"
PATTERN = re.compile(rf"`({PLACES}(?:[-/:. T]?{PLACES})+)`")
# a bullet or paragraph of the task that is about some columns: "- time_utc: ...",
# "user_id, user_name: from ...", "`amount`: written with ..."
ITEM_HEAD = re.compile(r"^\s*(?:[-*]\s+)?(`?\w+`?(?:(?:\s*,|\s+and)\s+`?\w+`?)*)\s*:")


def decimals(task: str) -> int | None:
    """The most decimals the task allows a number (None when it says nothing of decimals)."""
    found = [int(NUMBER_WORDS.get(m[2].lower(), m[2])) for m in DECIMALS.finditer(task)]
    return max(found) if found else None


def items(task: str) -> list[str]:
    """The task's bullets and paragraphs, each on one line (wrapped lines joined)."""
    parts = re.split(r"\n(?=\s*[-*] )|\n\s*\n", task)
    return [" ".join(p.split()) for p in parts if p.strip()]


def column_formats(task: str) -> dict[str, tuple[re.Pattern[str], str]]:
    """{column: (the pattern its values must match, how the task puts it)} for the columns a
    bullet of the task writes in a date format or with exactly N decimals."""
    out: dict[str, tuple[re.Pattern[str], str]] = {}
    for item in items(task):
        head = ITEM_HEAD.match(item)
        if not head:
            continue
        names = re.findall(r"\w+", head[1].replace(" and ", ","))
        pattern = PATTERN.search(item)
        exact = next((m for m in DECIMALS.finditer(item) if m[1]), None)
        if pattern:
            rule = re.compile(_digits(pattern[1]))
            said = f"written {pattern[1]}"
        elif exact:
            n = int(NUMBER_WORDS.get(exact[2].lower(), exact[2]))
            rule, said = re.compile(rf"-?\d+\.\d{{{n}}}"), f"with exactly {n} decimals"
        else:
            continue
        for name in names:
            out.setdefault(name.lower(), (rule, said))
    return out


def _digits(pattern: str) -> str:
    places = re.split(f"({PLACES})", pattern)
    return "".join(rf"\d{{{len(p)}}}" if re.fullmatch(PLACES, p) else re.escape(p) for p in places)


def value_checks(workspace: Path, task: str, outputs: list[str]) -> list[Any]:
    """A decimals check on JSON outputs when the task rounds numbers; a formats check on CSV
    outputs when a bullet of the task writes a column's values in a date format or with
    exactly N decimals."""
    checks = []
    jsons = [o for o in outputs if o.lower().endswith(".json")]
    if jsons and (n := decimals(task)) is not None:
        checks.append(decimals_check(workspace, n, jsons, _input_numbers(workspace, outputs)))
    tables = [o for o in outputs if o.rsplit(".", 1)[-1].lower() in ("csv", "tsv")]
    if tables and (formats := column_formats(task)):
        checks.append(formats_check(workspace, formats, tables))
    return checks


def decimals_check(
    workspace: Path, most: int, paths: list[str], copied: frozenset[str] = frozenset()
) -> Any:
    """A check that no number in a JSON output has more decimals than the task rounds to (a
    1.5B's summary held sums such as 7518.450000000001 and an average of 187.96125 where the
    task said "rounded to 2 decimals"); a number written as an input writes it (copied) is
    not the task's to round."""

    def problems_in(rel: str, text: str) -> list[str]:
        found: list[str] = []
        _long_decimals(json.loads(text), most, "", found)
        found = [(where, value) for where, value in found if value not in copied]
        return [f"{rel}: {where} is {value}, more than {most} decimals" for where, value in found]

    name, fine = "the task's decimals", f"no number has more than {most} decimals"
    return file_check(workspace, paths, name, fine, problems_in, most=4)


def _input_numbers(workspace: Path, outputs: list[str], most: int = 2_000_000) -> frozenset[str]:
    """The decimal numbers the workspace's other text files write (up to `most` characters)."""
    numbers: set[str] = set()
    for rel in workspace_files(workspace):
        if rel in outputs or most <= 0:
            continue
        try:
            text = (workspace / rel).read_text(encoding="utf-8")[:most]
        except (OSError, UnicodeDecodeError):
            continue
        most -= len(text)
        numbers.update(re.findall(r"-?\d+\.\d+", text))
    return frozenset(numbers)


def _long_decimals(data: Any, most: int, where: str, found: list[tuple[str, str]]) -> None:
    if isinstance(data, float):
        digits = repr(data).split(".", 1)[1] if "." in repr(data) else ""
        if "e" not in digits and len(digits) > most:
            found.append((where or "the value", repr(data)))
    elif isinstance(data, dict):
        for key, value in data.items():
            _long_decimals(value, most, f"{where}[{json.dumps(key)}]", found)
    elif isinstance(data, list):
        for n, value in enumerate(data):
            _long_decimals(value, most, f"{where}[{n}]", found)


def formats_check(
    workspace: Path, formats: dict[str, tuple[re.Pattern[str], str]], paths: list[str]
) -> Any:
    """A check that each column the task writes in a format holds values in it (a 1.5B kept
    `2026-11-06T11:05:03+00:00` where the task said `YYYY-MM-DD HH:MM:SS`); empty cells
    pass."""

    def problems_in(rel: str, text: str) -> list[str]:
        rows = list(csv.reader(text.splitlines(), delimiter=separator(rel)))
        if len(rows) < 2:
            return []
        header = [cell.strip().lower() for cell in rows[0]]
        problems = []
        for column, (rule, said) in formats.items():
            if column not in header:
                continue
            at = header.index(column)
            for n, row in enumerate(rows[1:], start=2):
                value = row[at].strip() if len(row) > at else ""
                if value and not rule.fullmatch(value):
                    problems.append(f"{rel} row {n}: {column} is {value!r}, not {said}")
                    break  # one row a column says it
        return problems

    name, fine = "the task's formats", "each column is written as the task says"
    return file_check(workspace, paths, name, fine, problems_in, most=4)
