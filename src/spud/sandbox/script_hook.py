"""Runs a script read from stdin; after a crash's traceback, prints the values where it failed.

Drafted scripts run as `python3 <this file> [--sheets BOOK.xlsx ...] <<'SPUD_SCRIPT'`: a short
command that a model reading the run can copy whole (the hook written inline was 1,000
characters the 1.5B copied, cut, for 190 s; so was the workbook loader, for a pptx task).
`--sheets` gives the script SHEETS[book][sheet]: each sheet's rows as lists of values, the
header first, a formula without a stored value as its text. The file is bound read-only into
the sandbox at its own path.
"""

import re
import sys
import traceback


def shown(kind, exc, tb):
    """The traceback, then the names on the failing line and the frame's locals, by value."""
    traceback.print_exception(kind, exc, tb.tb_next)
    last = None
    while tb:
        last = tb if tb.tb_frame.f_code.co_filename == "<stdin>" else last
        tb = tb.tb_next
    if last is None:
        return
    frame, lines, n = last.tb_frame, SOURCE.splitlines(), last.tb_lineno
    scope = {**frame.f_globals, **frame.f_locals}
    named = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", lines[n - 1] if 0 < n <= len(lines) else "")
    names = [*dict.fromkeys(named), *reversed(frame.f_locals)]
    names = [
        k
        for k in dict.fromkeys(names)
        if k in scope
        and not k.startswith("__")
        and not callable(scope[k])
        and type(scope[k]).__name__ != "module"
    ][:12]
    if names:
        print("Values where it failed:", file=sys.stderr)
    for k in names:
        print(f"  {k} = {repr(scope[k])[:300]}", file=sys.stderr)


def rows(path):
    """Each sheet of a workbook as lists of values (formulas never calculated as text)."""
    import openpyxl

    stored, written = openpyxl.load_workbook(path, data_only=True), openpyxl.load_workbook(path)
    return {
        ws.title: [
            [v if v is not None else f for v, f in zip(row, formulas, strict=True)]
            for row, formulas in zip(
                ws.iter_rows(values_only=True),
                written[ws.title].iter_rows(values_only=True),
                strict=True,
            )
        ]
        for ws in stored.worksheets
    }


if __name__ == "__main__":
    SOURCE = sys.stdin.read()
    books = sys.argv[sys.argv.index("--sheets") + 1 :] if "--sheets" in sys.argv else []
    sys.excepthook = shown
    sys.argv = ["-"]
    sys.path[0] = ""  # the script's imports come from the workspace, as with `python3 -`
    scope = {"__name__": "__main__", "__file__": "<stdin>"}
    if books:
        scope["SHEETS"] = {book: rows(book) for book in books}
    exec(compile(SOURCE, "<stdin>", "exec"), scope)
