"""The rows of the tables a web draft read, as dicts a pick script chooses from, and its filters."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

CELLS = " | "  # how a page's text shows a table row
MAX_ROWS = 80  # more rows than this are left to the model's own reading of the pages
# A cell that is one number, with a currency sign before or a short unit after: "£39.90",
# "1,299", "1.2 kg", "45 min" (not a date, a time, a code or a name with a number in it)
NUMBER_CELL = re.compile(r"^[^\w\s-]{0,2}\s*(-?\d[\d,]*(?:\.\d+)?)\s*(?:[A-Za-z%]{0,4}\.?)$")
LINK = re.compile(r"(.+?) -> (\S+)$")
WORD = re.compile(r"[a-z0-9]{3,}")
NEGATED = re.compile(r"\b(?:not|except|other than|rather than)\b([^,.;:()]*)", re.IGNORECASE)
COMMON = {
    "the", "and", "for", "with", "that", "this", "from", "into", "open", "page", "pages", "write",
    "tell", "when", "finish", "then", "use", "file", "just", "number", "html", "http", "https",
    "www", "what", "which", "there", "shown", "exactly", "one", "each", "all", "are", "its",
}  # fmt: skip


@dataclass
class Row:
    """One table row: the dict a script sees, and the row as its page shows it."""

    item: dict[str, Any]
    shown: str
    literal: str = ""  # the item as Python, each number as the page writes it ("34.50")


def table_rows(pages: list[str]) -> list[Row]:
    """Every table row of the pages (a header line and two rows or more), each a dict of its
    page's title, the text of the link that led to the page (when a read page links it), and
    its cells by their column's name, numbers as numbers. When the tables name their first
    column differently ("Model", "Kettle"), it is "name" in all of them."""
    links = _link_texts(pages)
    tables = []
    for page in pages:
        head = page.split("\n", 1)[0].removeprefix("## ")
        title, _, url = head.rpartition(" - ")
        for header, rows in _tables(page):
            tables.append(
                (title or head, links.get(url.split(" (HTTP", 1)[0].strip()), header, rows)
            )
    if not tables:
        return []
    firsts = {_key(header[0]) for _, _, header, _ in tables}
    out = []
    for title, link, header, rows in tables:
        keys = _keys(header)
        if len(firsts) > 1:
            keys[0] = "name"
        for cells in rows:
            item: dict[str, Any] = {"page": title}
            if link:
                item["link"] = link
            values = [_value(c) for c in cells]
            item.update(zip(keys, (v for v, _ in values), strict=True))
            written = [f"{k!r}: {v!r}" for k, v in item.items() if k in ("page", "link")]
            written += [f"{k!r}: {text}" for k, (_, text) in zip(keys, values, strict=True)]
            where = f"{title} (linked as {link!r})" if link else title
            shown = "; ".join(f"{h}: {c}" for h, c in zip(header, cells, strict=True))
            out.append(Row(item, f"{where}: {shown}", "{" + ", ".join(written) + "}"))
    return out


def items_literal(rows: list[Row]) -> str:
    """The rows as the Python statement that defines ITEMS."""
    return "ITEMS = [\n" + "".join(f"    {row.literal},\n" for row in rows) + "]"


def printed_rows(printed: str, rows: list[Row]) -> list[Row]:
    """The rows a script printed, one dict's repr a line (lines that are no row left out)."""
    found = []
    for line in printed.strip().splitlines():
        try:
            value = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        found += [row for row in rows if row.item == value][:1]
    return found


def _tables(page: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of each run of table lines on a page, rows with the header's width."""
    found, block = [], []
    for line in [*page.splitlines()[1:], ""]:  # after the `## title - address` line
        if CELLS in line:
            block.append([c.strip() for c in line.split(CELLS)])
            continue
        if len(block) >= 3:
            header, rows = block[0], [r for r in block[1:] if len(r) == len(block[0])]
            if len(rows) >= 2:
                found.append((header, rows))
        block = []
    return found


def _link_texts(pages: list[str]) -> dict[str, str]:
    """Each linked address by the text of the first link to it on the read pages."""
    out: dict[str, str] = {}
    for page in pages:
        for line in page.splitlines():
            if line.startswith("Links: "):
                for part in line.removeprefix("Links: ").split("; "):
                    if m := LINK.match(part.strip()):
                        out.setdefault(m[2], m[1].strip())
    return out


def _key(header: str) -> str:
    name = re.sub(r"\(.*?\)", "", header).strip().lower()
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_") or "column"


def _keys(header: list[str]) -> list[str]:
    keys: list[str] = []
    for cell in header:
        key = base = _key(cell)
        n = 2
        while key in keys or key in ("page", "link"):
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


def _value(cell: str) -> tuple[Any, str]:
    """A cell's value (a number when it is one) and that value written as Python, a number
    as the page writes it (34.50 stays 34.50, not 34.5: the answer copies it)."""
    m = NUMBER_CELL.match(cell)
    digits = m[1].replace(",", "") if m else ""
    if not m or re.match(r"-?0\d", digits):  # "007" is a code, and no Python number
        return cell, repr(cell)
    number = float(digits)
    return (int(number) if "." not in digits else number), digits


def task_words(text: str) -> set[str]:
    return {w.rstrip("s") for w in WORD.findall(text.lower()) if w not in COMMON}


def unasked(script: str, task: str) -> list[str]:
    """The texts a pick script keeps items by (`item["monitor"] == "Clarity 27 Pro"`) that
    share no word with the task: a 1.5B asked for the cheapest monitor kept only the first
    row's, copied from the example's filter, and named the dearest one (asked again, it
    wrote the same filter)."""
    try:
        tree = ast.parse(script)
    except SyntaxError:
        return []
    return [v for node in ast.walk(tree) for v in _unasked_in(node, task_words(task))]


def unfiltered(script: str, task: str) -> str:
    """The script with each comparison against a text the task never names made True."""

    class Drop(ast.NodeTransformer):
        def visit_Compare(self, node: ast.Compare) -> ast.AST:
            return ast.Constant(True) if _unasked_in(node, words) else node

    words = task_words(task)
    try:
        tree = ast.parse(script)
    except SyntaxError:
        return script
    return (
        ast.unparse(ast.fix_missing_locations(Drop().visit(tree)))
        if unasked(script, task)
        else script
    )


def _unasked_in(node: ast.AST, words: set[str]) -> list[str]:
    if not isinstance(node, ast.Compare) or not isinstance(node.ops[0], (ast.Eq, ast.In)):
        return []
    return [
        side.value
        for side in (node.left, *node.comparators)
        if isinstance(side, ast.Constant)
        and isinstance(side.value, str)
        and side.value.strip()
        and not task_words(side.value) & words
    ]


def named_page(read: list[str], task: str) -> str | None:
    """The one page past the start page whose title shares most words with the task, two at
    least, less the words the task says no to (the lentil soup's among three recipes: a 1.5B
    shown the three took the salad's preparation time for the soup's)."""
    avoid = task_words(" ".join(NEGATED.findall(task)))  # "not the small one"
    words = task_words(NEGATED.sub(" ", task))
    scores = [
        len(task_words(page_title(page)) & words) - len(task_words(page_title(page)) & avoid)
        for page in read[1:]
    ]
    best = max(scores, default=0)
    return read[1:][scores.index(best)] if best >= 2 and scores.count(best) == 1 else None


def page_title(page: str) -> str:
    """A page's title, from its `## title - address` line."""
    return page.split("\n", 1)[0].removeprefix("## ").rsplit(" - ", 1)[0]
