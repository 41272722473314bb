"""Snapshot compaction: Playwright's aria snapshot as short lines, refs only where usable."""

from __future__ import annotations

import re

TABLE_PREVIEW_ROWS = 20


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) used for budgets."""
    return (len(text) + 3) // 4


_LINE = re.compile(r"^(?P<indent> *)- (?P<body>.*)$")
_NODE = re.compile(
    r'^(?P<role>/?[a-z][\w-]*)(?: "(?P<name>(?:[^"\\]|\\.)*)")?(?P<attrs>(?: \[[^\]]*\])*)'
    r"(?P<colon>:)?(?: (?P<text>.*))?$"
)
KEEP_REF = {
    "link",
    "button",
    "textbox",
    "searchbox",
    "combobox",
    "listbox",
    "checkbox",
    "radio",
    "slider",
    "spinbutton",
    "switch",
    "tab",
    "menuitem",
    "menuitemcheckbox",
    "menuitemradio",
    "treeitem",
    "table",
}
WRAPPERS = {
    "generic",
    "rowgroup",
    "group",
    "none",
    "presentation",
    "paragraph",
    "main",
    "section",
    "list",
    "listitem",
}
DROP_ATTRS = {"active", "cursor=pointer"}


class _Node:
    def __init__(self, role: str, name: str, attrs: list[str], text: str) -> None:
        self.role, self.name, self.attrs, self.text = role, name, attrs, text
        self.children: list[_Node] = []

    @property
    def ref(self) -> str:
        return next((a[4:] for a in self.attrs if a.startswith("ref=")), "")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        return inner.replace("''", "'") if text[0] == "'" else inner.replace('\\"', '"')
    return text


def _parse_body(body: str) -> _Node:
    if body.startswith("'"):  # a YAML single-quoted key: 'role "name" [ref=e1]'[: text]
        end = 1
        while end < len(body):
            if body[end] == "'" and body[end + 1 : end + 2] == "'":
                end += 2
                continue
            if body[end] == "'":
                break
            end += 1
        body = body[1:end].replace("''", "'") + body[end + 1 :]
    m = _NODE.match(body)
    if not m:
        return _Node("text", "", [], _unquote(body))
    attrs = re.findall(r"\[([^\]]*)\]", m.group("attrs") or "")
    name = (m.group("name") or "").replace('\\"', '"')
    return _Node(m.group("role"), name, attrs, _unquote(m.group("text") or ""))


def parse_snapshot(raw: str) -> list[_Node]:
    """Playwright's AI-mode aria snapshot as a tree of nodes."""
    roots: list[_Node] = []
    stack: list[tuple[int, _Node]] = []
    for line in raw.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        depth = len(m.group("indent"))
        node = _parse_body(m.group("body"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        (stack[-1][1].children if stack else roots).append(node)
        stack.append((depth, node))
    return roots


def compact_snapshot(raw: str) -> list[str]:
    """Compact lines: wrappers flattened, refs kept only where a tool can use them."""
    out: list[str] = []
    for node in parse_snapshot(raw):
        _render(node, 0, out)
    return out


def _label(node: _Node) -> str:
    parts = [node.role]
    if node.name:
        parts.append(f'"{node.name}"')
    for attr in node.attrs:
        if attr.startswith("ref="):
            if node.role in KEEP_REF:
                parts.append(f"[{attr[4:]}]")
        elif attr not in DROP_ATTRS and not attr.startswith("cursor="):
            parts.append(f"[{attr}]")
    return " ".join(parts)


def _cell(node: _Node) -> str:
    controls = [n for n in _walk(node) if n.role in KEEP_REF and n.ref]
    if controls:
        return " ".join(_label(n) for n in controls)
    return node.name or node.text or " ".join(_texts(node))


def _walk(node: _Node) -> list[_Node]:
    found = []
    for child in node.children:
        found.append(child)
        found += _walk(child)
    return found


def _texts(node: _Node) -> list[str]:
    return [n.name or n.text for n in _walk(node) if (n.name or n.text) and n.role != "/url"]


def _rows(node: _Node) -> list[_Node]:
    rows = []
    for child in node.children:
        rows += [child] if child.role == "row" else _rows(child)
    return rows


def _render(node: _Node, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    role = node.role
    if role.startswith("/"):
        return
    if role == "text":
        out.append(f"{pad}- text: {node.text or node.name}")
        return
    if role == "table":
        rows = _rows(node)
        out.append(f"{pad}- {_label(node)}: {len(rows)} rows")
        for row in rows[:TABLE_PREVIEW_ROWS]:
            out.append(f"{pad}  - row: " + " | ".join(_cell(c) for c in row.children))
        if len(rows) > TABLE_PREVIEW_ROWS:
            more = len(rows) - TABLE_PREVIEW_ROWS
            out.append(f"{pad}  - ... {more} more rows (browser_read ref={node.ref})")
        return
    if role in ("combobox", "listbox") and any(c.role == "option" for c in node.children):
        options = [
            c.name + (" (selected)" if "selected" in c.attrs else "")
            for c in node.children
            if c.role == "option"
        ]
        out.append(f"{pad}- {_label(node)}: options " + ", ".join(options))
        return
    if role in WRAPPERS and not node.name:
        if node.text:
            out.append(f"{pad}- text: {node.text}")
        for child in node.children:
            _render(child, depth, out)
        return
    line = f"{pad}- {_label(node)}"
    if node.text:
        line += f": {node.text}"
    out.append(line)
    for child in node.children:
        _render(child, depth + 1, out)
