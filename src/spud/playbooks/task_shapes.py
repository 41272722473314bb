"""What a task says: its outputs' shapes (checked on the outputs) and its which-question."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from spud.core.protocols import CheckResult

# "Which branch is open on Sundays?": asked of each page alone as "Is this branch open on
# Sundays?" (a 1.5B shown the three pages at once, or asked whether a page "holds what the task
# looks for", picked a branch whose page says "Sun closed"; asked that question, it did not)
WHICH = re.compile(
    r"\bwhich (?:one|(?:of (?:the|our|these|its|their) )?(\w+)) "
    r"(is|are|was|were|has|have|\w+s)\b ([^?.!;:\n]+)",
    re.IGNORECASE,
)
# "`sku`, `name`: strings", "`price`: a number (e.g. `4.5`)", "`tags`: a list of strings",
# "`year` is an integer", "`isbn` and `title` are strings as written"
TYPED = re.compile(
    r"((?:`\w+`(?:\s*,\s*|\s+and\s+|\s+or\s+)?)+)\s*(?::|\s(?:is|are)\b)\s*(?:an?\s+|the\s+)?"
    r"(numbers?|integers?|ints?|booleans?|bools?|strings?|lists?|arrays?|objects?)\b"
    r"([^;.\n]*)",
    re.IGNORECASE,
)
KINDS = {
    "number": "a number",
    "integer": "an integer",
    "int": "an integer",
    "boolean": "a boolean",
    "bool": "a boolean",
    "string": "a string",
    "list": "a list",
    "array": "a list",
    "object": "an object",
}


def typed_keys(task: str) -> dict[str, tuple[str, bool]]:
    """{key: (kind, null allowed)} for each key the task gives a JSON type."""
    out: dict[str, tuple[str, bool]] = {}
    for m in TYPED.finditer(task):
        word = m[2].lower()
        kind = KINDS.get(word) or KINDS[word[:-1]]  # a plural ("strings")
        nullable = bool(re.search(r"\bnull\b|\bNone\b", m[3]))
        for key in re.findall(r"`(\w+)`", m[1]):
            out.setdefault(key, (kind, nullable))
    return out


def fits(value: Any, kind: str) -> bool:
    if kind == "a number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "a boolean":
        return isinstance(value, bool)
    if kind == "a string":
        return isinstance(value, str)
    if kind == "a list":  # [""] is what "".split(";") gives for an empty field: a slip
        return isinstance(value, list) and value != [""]
    return isinstance(value, dict)


def _objects(data: Any) -> list[dict]:
    """The JSON's records: the document itself, the objects of a top-level array, and the
    object values of a top-level object (a record per name)."""
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict)]
    if isinstance(data, dict):
        inner = [v for v in data.values() if isinstance(v, dict)]
        return [data, *inner]
    return []


def _all_objects(data: Any) -> list[dict]:
    """Every object in a JSON document, at any depth."""
    if isinstance(data, dict):
        return [data, *(o for v in data.values() for o in _all_objects(v))]
    if isinstance(data, list):
        return [o for v in data for o in _all_objects(v)]
    return []


def shown(value: Any) -> str:
    if value == [""]:
        return '[""] (a list holding one empty string, as "".split(";") gives for an empty field)'
    kind = {str: "text", bool: "a boolean", type(None): "null", list: "a list", dict: "an object"}
    name = kind.get(type(value), "a number")
    return f"{json.dumps(value)[:40]} ({name})"


# "with the header sku,name,qty_a,qty_b,total", "the header row station,rainfall_mm"
HEADER = re.compile(
    r"\bheader(?:\s+(?:row|line))?\s+(?:is\s+)?[`'\"]?"
    r"([A-Za-z_][\w.-]*(?:,[A-Za-z_][\w.-]*)+)"
)


def shape_checks(workspace: Path, task: str, outputs: list[str]) -> list[Any]:
    """The typed-keys check when the task asks for a JSON file and types some of its keys;
    the example-lines check when it asks for a text file and shows lines in backticks."""
    checks = []
    if typed_keys(task) and any(o.lower().endswith(".json") for o in outputs):
        checks.append(typed_keys_check(workspace, task, outputs))
    texts = [o for o in outputs if o.rsplit(".", 1)[-1].lower() in TEXT_TYPES]
    if texts and example_lines(task):
        checks.append(example_lines_check(workspace, task, texts))
    tables = [o for o in outputs if o.rsplit(".", 1)[-1].lower() in ("csv", "tsv")]
    if tables and (header := task_header(task)):
        checks.append(header_check(workspace, header, tables))
    if tables:
        checks.append(columns_check(workspace, tables))
    if texts and (order := sort_order(task))[0]:
        checks.append(sorted_check(workspace, order, texts))
    if texts and (lead := last_line(task)):
        checks.append(last_line_check(workspace, lead, texts))
    plain = [t for t in texts if t.rsplit(".", 1)[-1].lower() not in ("csv", "tsv")]
    if len(plain) == 1 and JUST_NUMBER.search(task):
        checks.append(number_check(workspace, plain))
    return checks


# "Write just the number into minutes.txt": the file holds one number and nothing else (a
# 1.5B wrote "50 minutes")
JUST_NUMBER = re.compile(
    r"\b(?:just|only) (?:the|a|one) (?:number|count|total|amount|figure|sum)\b", re.IGNORECASE
)
# "Write its name, exactly as the list shows it, into monitor.txt": one line (a 1.5B wrote the
# chosen row's name, size and price on three)
ONE_VALUE = re.compile(
    r"\bwrite (?:just |only )?(?:its|the) (?:name|title|year|date|price|time|room|code)\b(?!s)"
    r"(?![^.]*\band\b)",
    re.IGNORECASE,
)
ONE_NUMBER = re.compile(r"^[-+]?\d[\d,]*(?:\.\d+)?$")


def number_check(workspace: Path, paths: list[str]) -> Any:
    def problems(rel: str, text: str) -> list[str]:
        if ONE_NUMBER.match(text.strip()):
            return []
        return [f"{rel} holds {text.strip()[:60]!r}; the task asks for just the number"]

    return file_check(workspace, paths, "just the number", "one number", problems)


def file_check(
    workspace: Path, paths: list[str], name: str, fine: str, problems_in: Any, most: int = 6
) -> Any:
    """A check over the text of each output: problems_in(rel, text) lists what is wrong; a
    missing, binary or unparsable file is another check's to report."""

    def run() -> CheckResult:
        problems: list[str] = []
        for rel in paths:
            try:
                problems += problems_in(rel, (workspace / rel).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError, csv.Error):
                continue
        return CheckResult(
            name=name, passed=not problems, detail="; ".join(problems[:most]) or fine
        )

    return run


def typed_keys_check(workspace: Path, task: str, paths: list[str]) -> Any:
    """A check that each key the task types has that type in every record of the JSON
    outputs that hold it (a 1.5B's converter wrote "price": "4.50" where the task said a
    number, and its run ended `finished`)."""
    types = typed_keys(task)

    def problems_in(rel: str, text: str) -> list[str]:
        data, problems = json.loads(text), []
        records = _objects(data)
        if not any(key in r for r in _all_objects(data) for key in types):
            # a 1.5B's converter wrote each row as a JSON string: no record to check
            first = data[0] if isinstance(data, list) and data else data
            keys = ", ".join(f'"{k}"' for k in types)
            return [
                f"{rel}: no record holds the keys the task types ({keys}); it holds {shown(first)}"
            ]
        for key, (kind, nullable) in types.items():
            wrong = [
                (n, r[key])
                for n, r in enumerate(records, 1)
                if key in r and not fits(r[key], kind) and not (nullable and r[key] is None)
            ]
            if wrong:
                n, value = wrong[0]
                problems.append(
                    f'{rel}: "{key}" is {shown(value)} in record {n} ({len(wrong)} '
                    f"record(s) so); the task says {kind}"
                )
        return problems

    jsons = [p for p in paths if p.lower().endswith(".json")]
    return file_check(workspace, jsons, "the task's JSON types", "as the task says", problems_in)


# Outputs whose lines an example in the task can show.
TEXT_TYPES = {"txt", "log", "csv", "tsv", "md", "out"}
EXAMPLE = re.compile(r"`([^`\n]+)`")


def example_lines(task: str) -> list[list[str]]:
    """The task's backticked spans of four or more words: lines it shows as examples."""
    spans = (m.split() for m in EXAMPLE.findall(task))
    return [words for words in spans if len(words) >= 4]


def _one_word_apart(line: list[str], example: list[str]) -> str | None:
    """The word the line leaves out of the example, or adds to it; None if not exactly one."""
    if abs(len(line) - len(example)) != 1:
        return None
    short, long_ = sorted((line, example), key=len)
    for i, word in enumerate(long_):
        if long_[:i] + long_[i + 1 :] == short:
            return word
    return None


def example_lines_check(workspace: Path, task: str, paths: list[str]) -> Any:
    """A check that an output line one word away from a line the task shows (a 1.5B's merged
    log left out the source name that the task's example line has after the timestamp) is
    written as the example is: a line the example's shape with a word left out or added."""
    examples = example_lines(task)

    def problems_in(rel: str, text: str) -> list[str]:
        lines, problems = text.splitlines(), []
        words = [line.split() for line in lines]
        for example in examples:
            if example in words:
                continue
            for n, line in enumerate(words, 1):
                word = _one_word_apart(line, example)
                if word is not None:
                    how = "leaves out" if len(line) < len(example) else "adds"
                    problems.append(
                        f"{rel} line {n} is {lines[n - 1].strip()!r}; the task shows the "
                        f"line {' '.join(example)!r}, and line {n} {how} {word!r}"
                    )
                    break
        return problems

    name, fine = "the task's example lines", "as the task shows"
    return file_check(workspace, paths, name, fine, problems_in, most=4)


# "then a last line `TOTAL: grand total`", "a final line `ALL: N orders, total`"
LAST_LINE = re.compile(r"\b(?:last|final) line (?:of the form |reading )?`([^`\n]+)`", re.I)


def last_line(task: str) -> str:
    """How the line the task puts last starts: its example up to the first colon, else its
    first word; empty when the task puts no line last."""
    m = LAST_LINE.search(task)
    if not m:
        return ""
    example = m[1].strip()
    return example.split(":", 1)[0] + ":" if ":" in example else example.split()[0]


def last_line_check(workspace: Path, lead: str, paths: list[str]) -> Any:
    """A check that the line the task puts last is last (a 1.5B's report script wrote its
    `ALL:` line first, and the lines below it still read as sorted)."""

    def problems_in(rel: str, text: str) -> list[str]:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines or lines[-1].startswith(lead):
            return []
        where = next((n for n, line in enumerate(lines, 1) if line.startswith(lead)), 0)
        found = f"it is line {where} of {len(lines)}" if where else "no line starts so"
        return [f"{rel}: the task asks for a last line starting {lead!r}; {found}"]

    return file_check(workspace, paths, "the task's last line", "as the task asks", problems_in)


def task_header(task: str) -> list[str]:
    """The header row the task gives a CSV output, as its cells; empty when it gives none."""
    m = HEADER.search(task)
    return [cell.strip() for cell in m[1].split(",")] if m else []


def header_check(workspace: Path, header: list[str], paths: list[str]) -> Any:
    """A check that a CSV output's first row is the header the task gives (a 1.5B's script
    wrote `Name,Team,Office,Since,` for the task's `name,team,office,since`)."""

    def problems_in(rel: str, text: str) -> list[str]:
        first = next(csv.reader(text.splitlines(), delimiter=separator(rel)), [])
        if [cell.strip() for cell in first] == header:
            return []
        return [
            f"{rel}: the first row is {','.join(first)!r}; the task gives the header "
            f"{','.join(header)!r}"
        ]

    return file_check(workspace, paths, "the task's header", "as the task gives it", problems_in)


# What a column's values hold, by the last word of its name ("customer_email", "unit_price"):
# a 1.5B's extraction script wrote name,city,email values under the header name,email,city.
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.\w+$")
EMAIL_WORDS = {"email", "mail", "e-mail"}
DIGIT_WORDS = {
    "amount", "count", "cost", "date", "hours", "kg", "km", "mm", "phone", "price", "qty",
    "quantity", "score", "total", "units", "year",
}  # fmt: skip


def column_kind(name: str) -> str:
    """'email', 'digits' or '' (anything) for a CSV column, by the last word of its name."""
    words = re.split(r"[\s_]+", name.strip().lower())
    last = words[-1] if words else ""
    return "email" if last in EMAIL_WORDS else "digits" if last in DIGIT_WORDS else ""


def columns_check(workspace: Path, paths: list[str]) -> Any:
    """A check that a CSV output's values fit their columns: an e-mail column holds e-mail
    addresses and no other column does, a price, date or count column holds digits (values
    written under the wrong column, an empty field allowed)."""

    def problems_in(rel: str, text: str) -> list[str]:
        rows = list(csv.reader(text.splitlines(), delimiter=separator(rel)))
        if len(rows) < 2:
            return []
        header = [cell.strip() for cell in rows[0]]
        kinds = [column_kind(name) for name in header]
        if not any(kinds):
            return []
        problems = []
        for n, row in enumerate(rows[1:], start=2):
            for name, kind, value in zip(header, kinds, (v.strip() for v in row), strict=False):
                if not value:
                    continue
                if kind == "email" and not EMAIL.match(value):
                    why = "which is not an e-mail address"
                elif kind != "email" and "email" in kinds and EMAIL.match(value):
                    why = "an e-mail address, which belongs under the e-mail column"
                elif kind == "digits" and not re.search(r"\d", value):
                    why = "with no digit in it"
                else:
                    continue
                problems.append(f"{rel} row {n}: the {name} column holds {value[:40]!r}, {why}")
        return problems

    name, fine = "values in their columns", "each fits its column"
    return file_check(workspace, paths, name, fine, problems_in, most=4)


def separator(rel: str) -> str:
    return "\t" if rel.lower().endswith(".tsv") else ","


def yes_no_question(task: str) -> str:
    """The task's "which" question asked of one item ("Which branch is open on Sundays?" is
    "Is this branch open on Sundays?", "which shop delivers to Norway" is "Does this shop
    deliver to Norway?"); empty when the task asks none."""
    m = WHICH.search(task)
    if not m:
        return ""
    noun, verb, rest = (m[1] or "item").lower(), m[2].lower(), m[3].strip()
    noun = noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun
    if verb in ("is", "are", "was", "were"):
        return f"Is this {noun} {rest}?"
    if verb in ("has", "have"):
        return f"Does this {noun} have {rest}?"
    if verb.endswith("ies"):
        base = verb[:-3] + "y"
    elif verb.endswith(("sses", "shes", "ches", "xes", "oes")):
        base = verb[:-2]
    else:
        base = verb[:-1]
    return f"Does this {noun} {base} {rest}?"


# "How many of them have a balcony?", "how many branches are open on Sundays": each page is
# asked "Does this one have a balcony?" and the pages that say YES are counted (a 1.5B shown
# four flats at once, two with a balcony, answered 4)
HOW_MANY = re.compile(
    r"\bhow many (?:of (?:them|these|those)\b|(?:of (?:the|our|these|its|their) )?(\w+)) "
    r"(\w+)\b ([^?.!;:\n]+)",
    re.IGNORECASE,
)
VERBS = {
    "is", "are", "was", "were", "has", "have", "had", "offer", "sell", "include", "allow",
    "accept", "deliver", "open", "close", "take", "ship", "support", "cost", "need", "come",
}  # fmt: skip


def how_many_question(task: str) -> str:
    """The task's "how many" question asked of one item ("How many of them have a balcony?"
    is "Does this one have a balcony?"); empty when the task asks none."""
    m = HOW_MANY.search(task)
    if not m or m[2].lower() not in VERBS:  # "how many Garden Fork units": no count of pages
        return ""
    noun, verb, rest = (m[1] or "one").lower(), m[2].lower(), m[3].strip()
    if rest.lower().split()[0] in ("there", "left", "in", "on", "listed"):
        return ""  # a count of what one page lists, not of pages that fit
    if noun.endswith(("ches", "shes", "sses", "xes")):
        noun = noun[:-2]
    elif noun.endswith("s") and not noun.endswith("ss"):
        noun = noun[:-1]
    if verb in ("is", "are", "was", "were"):
        return f"Is this {noun} {rest}?"
    if verb in ("has", "have", "had"):
        return f"Does this {noun} have {rest}?"
    return f"Does this {noun} {verb} {rest}?"


# "sorted by category name", "sorted by date", "Sort the rows by time_utc", "in alphabetical
# order", "largest first"
SORTED = re.compile(
    r"(?<!not )\b(?:sorted(?: alphabetically)?(?: by ((?:the )?[\w ]{1,40}?))?"
    r"|[Ss]ort (?:(?:the|its|all|these) \w+ )?by ((?:the )?[\w ]{1,40}?))(?=[,.;:()\n]|$)"
)
# "in alphabetical order", not "most first, ties by path in alphabetical order"
ALPHABETICAL = re.compile(r"(?:^|[,.;:(\n])(?:(?!\bties\b)[^,.;:(\n])*\balphabetical order")
PER = re.compile(r"\bone (?:line|row) (?:per|for each|for every) (\w+)")
DESCENDING = re.compile(
    r"\b(?:descending|largest first|highest first|biggest first|most first|"
    r"newest first|from (?:highest|largest|most|newest)|reverse)",
    re.IGNORECASE,
)


def sort_order(task: str) -> tuple[list[str], bool, bool]:
    """What the task sorts its output lines by: the words after "sorted by", whether lines
    are keyed by their first field (by name, alphabetically, or by what there is one line
    per) and whether the order is descending; empty words when it sorts nothing."""
    m = SORTED.search(task)
    if not m and not ALPHABETICAL.search(task):
        return ([], False, False)
    words = ((m[1] or m[2] or "") if m else "").lower().removeprefix("the ").split()
    per = PER.search(task)
    by_first = not words or "name" in words or bool(per and per[1].lower() in words)
    by_first = by_first and "```" not in task  # a layout shown whole is its own order
    return (words or ["name"], by_first, bool(DESCENDING.search(task)))


def _key(line: str) -> str:
    head = line.split(":", 1)[0] if ":" in line else line.split(",", 1)[0]
    return head.strip()


def _in_order(keys: list[str], descending: bool) -> bool:
    """Sorted by any of the usual readings: as numbers, as text, ignoring case."""
    readings: list[list[Any]] = [keys, [k.lower() for k in keys]]
    try:
        readings.append([float(k.replace(",", "")) for k in keys])
    except ValueError:
        pass
    return any(r == sorted(r, reverse=descending) for r in readings)


def sorted_check(workspace: Path, order: tuple[list[str], bool, bool], paths: list[str]) -> Any:
    """A check that the lines of a text or CSV output come in the order the task asks for
    (a 1.5B's report scripts kept the input's order where the task said "sorted by category
    name"): a CSV by the header column the task sorts by, a text file by each line's first
    field when the task sorts by name or by what each line is for. Summary lines at the end
    (TOTAL, ALL) are left out; files whose sort key cannot be told are not checked."""
    words, by_first, descending = order

    def keys(rel: str, text: str) -> list[str]:
        lines = [line for line in text.splitlines() if line.strip()]
        if rel.lower().endswith((".csv", ".tsv")):
            rows = list(csv.reader(lines, delimiter=separator(rel)))
            head = [c.strip().lower() for c in rows[0]] if rows else []
            column = next((head.index(w) for w in words if w in head), None)
            if column is None:
                return []
            return [r[column].strip() for r in rows[1:] if len(r) > column]
        if not by_first:
            return []
        found = [_key(line) for line in lines]
        while len(found) > 1 and found[-1].isupper() and not all(k.isupper() for k in found):
            found.pop()  # TOTAL: ..., ALL: ...
        return found

    def problems_in(rel: str, text: str) -> list[str]:
        found = keys(rel, text)
        if len(found) < 2 or _in_order(found, descending):
            return []
        way = "descending" if descending else "ascending"
        return [
            f"{rel}: the lines are in the order {', '.join(found[:8])}; the task asks for them "
            f"sorted by {' '.join(words)} ({way})"
        ]

    return file_check(workspace, paths, "the task's order", "as the task asks", problems_in)
