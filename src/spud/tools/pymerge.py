"""Merge Python definitions into a module by name (replaced or added); brackets left open closed."""

from __future__ import annotations

import ast
import io
import textwrap
import tokenize

Defn = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
PAIRS = {"(": ")", "[": "]", "{": "}"}
CLOSE_WITHIN = 20  # lines after an unclosed bracket where its closers are tried


class MergeError(ValueError):
    """The new code cannot be merged (it does not parse, or the file does not)."""


def merge_python(original: str, snippet: str, module: str | None = None) -> str:
    """The module with the snippet's functions, classes, methods and imports put in by name.

    A snippet that defines every top-level function and class of the module replaces it whole.
    Otherwise each top-level def replaces the def (or the one method of a class) of the same
    name; a class replaces its namesake method by method, keeping methods it leaves out;
    imports and constants missing from the module are added (not imports of the module itself,
    named by module); new definitions are appended.
    """
    new_tree = _parse(snippet, "the new code")
    old_tree = _parse(original, "the file")
    old_names = {n.name for n in old_tree.body if isinstance(n, DEFS)}
    new_names = {n.name for n in new_tree.body if isinstance(n, DEFS)}
    lines = original.splitlines(keepends=True)
    new_lines = snippet.splitlines(keepends=True)
    if not old_names or old_names <= new_names:
        return "".join(_redocumented(new_lines, new_tree, old_tree, lines)).rstrip("\n") + "\n"
    edits: list[tuple[int, int, list[str]]] = []  # (start, end, replacement) on old lines
    appended: list[str] = []
    header: list[str] = []
    for node in new_tree.body:
        text = _source(new_lines, node)
        if isinstance(node, ast.ClassDef) and (old := _top(old_tree, node.name)) is not None:
            if isinstance(old, ast.ClassDef):
                edits.extend(_merge_class(lines, old, new_lines, node))
            else:
                edits.append((_start(old), old.end_lineno or old.lineno, text))
        elif isinstance(node, DEFS):
            old = _top(old_tree, node.name) or _only_method(old_tree, node.name)
            if old is None:
                appended += ["\n", "\n", *text]
            else:
                indent = _indent(lines[old.lineno - 1])
                text = _indented(_documented(text, node, lines, old), indent)
                edits.append((_start(old), old.end_lineno or old.lineno, text))
        elif isinstance(node, ast.ImportFrom) and module and node.module == module:
            continue  # `from calc import add` copied from the tests, inside calc.py
        elif isinstance(node, ast.Import | ast.ImportFrom | ast.Assign | ast.AnnAssign):
            if not any(line.strip() in original.splitlines() for line in text if line.strip()):
                header += text
        # anything else (a docstring, a __main__ block, calls) is left as the module has it
    out = list(lines)
    for start, end, text in sorted(edits, key=lambda e: e[0], reverse=True):
        out[start - 1 : end] = text
    if header:
        at = _header_end(old_tree)
        out[at:at] = header
    merged = "".join(out).rstrip("\n") + "\n"
    if appended:
        merged += "".join(appended).rstrip("\n") + "\n"
    _parse(merged, "the merged file")
    return merged


def _parse(text: str, what: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise MergeError(f"{what} is not valid Python: line {exc.lineno}: {exc.msg}") from exc


def _source(lines: list[str], node: ast.stmt) -> list[str]:
    text = lines[_start(node) - 1 : node.end_lineno or node.lineno]
    if text and not text[-1].endswith("\n"):
        text[-1] += "\n"
    return text


def _start(node: ast.stmt) -> int:
    """The first line of a statement, decorators included."""
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _top(tree: ast.Module, name: str) -> Defn | None:
    return next((n for n in tree.body if isinstance(n, DEFS) and n.name == name), None)


def _only_method(tree: ast.Module, name: str) -> Defn | None:
    """The method of this name when exactly one class of the module has one."""
    found = [
        m
        for c in tree.body
        if isinstance(c, ast.ClassDef)
        for m in c.body
        if isinstance(m, DEFS) and m.name == name
    ]
    return found[0] if len(found) == 1 else None


def _merge_class(
    lines: list[str], old: ast.ClassDef, new_lines: list[str], new: ast.ClassDef
) -> list[tuple[int, int, list[str]]]:
    """Edits that put the new class's methods into the old one, keeping the others."""
    old_methods = {m.name: m for m in old.body if isinstance(m, DEFS)}
    new_methods = [m for m in new.body if isinstance(m, DEFS)]
    if not old_methods or set(old_methods) <= {m.name for m in new_methods}:
        return [(_start(old), old.end_lineno or old.lineno, _source(new_lines, new))]
    edits, added = [], []
    indent = _indent(lines[old.body[0].lineno - 1])
    for method in new_methods:
        text = _indented(_source(new_lines, method), indent)
        if method.name in old_methods:
            prev = old_methods[method.name]
            text = _indented(_documented(_source(new_lines, method), method, lines, prev), indent)
            edits.append((_start(prev), prev.end_lineno or prev.lineno, text))
        else:
            added += ["\n", *text]
    if added:
        end = old.end_lineno or old.lineno
        edits.append((end + 1, end, added))  # an insertion after the class's last line
    return edits


def _redocumented(
    new_lines: list[str], new_tree: ast.Module, old_tree: ast.Module, lines: list[str]
) -> list[str]:
    """A whole new module with the old docstrings put back into the functions and methods
    that left theirs out."""
    pairs = []
    for node in new_tree.body:
        old = _top(old_tree, node.name) if isinstance(node, DEFS) else None
        if isinstance(node, ast.ClassDef) and isinstance(old, ast.ClassDef):
            olds = {m.name: m for m in old.body if isinstance(m, DEFS)}
            methods = [m for m in node.body if isinstance(m, DEFS) and m.name in olds]
            pairs += [(m, olds[m.name]) for m in methods]
        elif old is not None:
            pairs.append((node, old))
    out = list(new_lines)
    for new, old in sorted(pairs, key=lambda p: p[0].lineno, reverse=True):
        start, end = _start(new), new.end_lineno or new.lineno
        out[start - 1 : end] = _documented(_source(out, new), new, lines, old)
    return out


def _documented(text: list[str], new: ast.stmt, lines: list[str], old: ast.stmt) -> list[str]:
    """A new function's text with the old one's docstring put back when it left its own out
    (a model asked for code need not copy the docstrings)."""
    if not isinstance(new, ast.FunctionDef | ast.AsyncFunctionDef) or ast.get_docstring(new):
        return text
    doc = old.body[0] if isinstance(old, ast.FunctionDef | ast.AsyncFunctionDef) else None
    if doc is None or ast.get_docstring(old) is None or new.body[0].lineno == new.lineno:
        return text
    at = new.body[0].lineno - _start(new)  # the body's first line within text
    inner = _indent(text[at])
    old_doc = textwrap.dedent("".join(lines[doc.lineno - 1 : doc.end_lineno or doc.lineno]))
    doc_lines = [inner + line if line.strip() else line for line in old_doc.splitlines(True)]
    return [*text[:at], *doc_lines, *text[at:]]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _indented(text: list[str], indent: str) -> list[str]:
    body = textwrap.dedent("".join(text))
    return [indent + line if line.strip() else line for line in body.splitlines(keepends=True)]


def _header_end(tree: ast.Module) -> int:
    """The line after the module's docstring and imports, where new imports go."""
    end = 0
    for node in tree.body:
        is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if isinstance(node, ast.Import | ast.ImportFrom) or (is_doc and end == 0):
            end = node.end_lineno or node.lineno
        else:
            break
    return end


def closed(code: str, exc: SyntaxError) -> str | None:
    """The code with the brackets it left open closed, when that is all that is wrong.

    A 1.5B's tally.py was right but for one `print(json.dumps({...})` without its last `)`;
    asked to fix it, the model replied with comments only (40 s a round). The closers go at
    the end of the first line, from the opener's on, after which the code compiles.
    """
    if "was never closed" not in str(exc.msg) or not exc.lineno:
        return None
    lines = code.splitlines()
    start = exc.lineno - 1
    for end in range(start, min(start + CLOSE_WITHIN, len(lines))):
        opened = _open_brackets("\n".join(lines[start : end + 1]))
        if not opened:
            continue
        line = lines[end].rstrip()
        closers = "".join(PAIRS[b] for b in reversed(opened))
        head, colon = (line[:-1], ":") if line.endswith(":") else (line, "")
        candidate = [*lines[:end], head + closers + colon, *lines[end + 1 :]]
        fixed = "\n".join(candidate) + ("\n" if code.endswith("\n") else "")
        try:
            compile(fixed, "draft", "exec")
        except SyntaxError:
            continue
        return fixed
    return None


def _open_brackets(text: str) -> list[str]:
    """The brackets still open at the end of text (those inside strings and comments aside)."""
    stack: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string in PAIRS:
                stack.append(tok.string)
            elif tok.type == tokenize.OP and tok.string in PAIRS.values() and stack:
                stack.pop()
    except (tokenize.TokenError, SyntaxError):
        pass  # the end of the text inside an open bracket: the stack is what is open
    return stack


def syntax_error(code: str, exc: SyntaxError) -> str:
    """A syntax error with its line, for the model to see what Python 3.11 refused."""
    lines = code.splitlines()
    at = lines[exc.lineno - 1].strip() if exc.lineno and exc.lineno <= len(lines) else ""
    shown = f" `{at[:160]}`" if at else ""
    return f"line {exc.lineno}{shown}: {exc.msg} (this is Python 3.11)"
