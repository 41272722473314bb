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

# A 1.5B's openpyxl slips, eight scripts running (`ws[2:]`, `ws.rows[1:]`, `ws[0]`, `ws.header`):
# after such a crash the hook says how a worksheet is read, as a person who knows openpyxl would.
SHEET_HINT = """Hint, how openpyxl reads and writes a worksheet ws:
  wb = openpyxl.load_workbook('book.xlsx'); ws = wb['Stock'] is the sheet named Stock
  (wb.worksheets is a list: wb.worksheets[0]); wb.create_sheet('New') adds a sheet
  ws['A2'] is one cell; ws[2] is row 2's cells (rows start at 1)
  ws['D2:D26'] is a tuple of rows, each a tuple of cells:
    for row in ws['D2:D26']:
        for cell in row:
            cell.number_format = '0.00'
  ws.iter_rows(min_row=2, values_only=True) gives the values row by row
  ws.append([v1, v2, v3]) adds a row from a list of values
  ws[2:], ws[0], ws.rows[1:] and ws.header do not exist"""
LOADED_HINT = (
    "Hint: {name} is not defined here. The workbooks' values are loaded already: rows = "
    "{example} gives that sheet's rows as lists, the header first; header, data = rows[0], "
    "rows[1:]."
)

# A 1.5B's csv.DictReader on `EX-1003, 2026-11-03, "Zoom Pro, monthly", 197.00`: the quote after
# ", " is not a quote to csv, the row got a None key, and two repairs did not see why.
CSV_HINT = (
    "Hint: {name} has a None key: that line has more fields than the header. A quoted field "
    'after ", " (a space after the comma) is split at its commas unless the reader is made with '
    "csv.DictReader(f, skipinitialspace=True) (or csv.reader(f, skipinitialspace=True))."
)


def shown(kind, exc, tb):
    """The traceback, then the names on the failing line and the frame's locals, by value."""
    print(_traceback(kind, exc, tb.tb_next), end="", file=sys.stderr)
    if hint := _hint(exc, tb):
        print(hint, file=sys.stderr)
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
    split = next((k for k in names if isinstance(scope[k], dict) and None in scope[k]), None)
    if split:  # before the values, which a repair's shortened failure may cut
        print(CSV_HINT.format(name=split), file=sys.stderr)
    if names:
        print("Values where it failed:", file=sys.stderr)
    for k in names:
        print(f"  {k} = {_value(scope[k])}", file=sys.stderr)


def _traceback(kind, exc, tb):
    """The script's own frames in full; the frames inside a library after them as one line
    (a pandas KeyError was 20 lines of pandas' internals, then the same error chained from
    its index engine, before the line of the script that made it)."""
    frames = traceback.extract_tb(tb)
    mine = [i for i, f in enumerate(frames) if f.filename == "<stdin>"]
    if not mine or mine[-1] == len(frames) - 1:
        return "".join(traceback.format_exception(kind, exc, tb))
    cut = mine[-1] + 1
    inside = frames[cut].filename.replace("\\", "/")
    library = re.search(r"(?:site|dist)-packages/([^/]+)", inside)
    where = library[1] if library else inside.rsplit("/", 1)[-1]
    return "".join(
        [
            "Traceback (most recent call last):\n",
            *traceback.format_list(frames[:cut]),
            f"  [... {len(frames) - cut} more frame(s) inside {where}]\n",
            *traceback.format_exception_only(kind, exc),
        ]
    )


def _value(value):
    """A value as the failing script's reader needs it: a pandas table by its columns and
    first rows (its repr showed rows cut at 300 characters, never the column names a
    KeyError was about)."""
    kind = type(value)
    if kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame":
        head = value.head(3).to_string()[:400]
        return (
            f"DataFrame of {len(value)} rows, columns {list(value.columns)!r}; first rows:\n{head}"
        )
    if kind.__module__.startswith("pandas") and kind.__name__ == "Series":
        return f"Series {value.name!r} of {len(value)} values, first {value.head(3).tolist()!r}"
    return repr(value)[:300]


def _hint(exc, tb):
    """What to do instead, for the crashes a small model's workbook scripts keep making."""
    files = []
    while tb:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    text = str(exc)
    in_sheet = any(f.replace("\\", "/").endswith("openpyxl/worksheet/worksheet.py") for f in files)
    misread = (
        "'generator' object is not subscriptable",
        "'tuple' object has no attribute",
        "list indices must be integers or slices, not str",  # wb.worksheets['Stock']
    )
    unnamed = isinstance(exc, NameError) and exc.name in ("ws", "wb", "sheet", "worksheet")
    if (
        in_sheet
        or "'Worksheet' object" in text
        or ("openpyxl" in sys.modules and (unnamed or any(m in text for m in misread)))
    ):
        return SHEET_HINT
    books = globals().get("LOADED") or {}
    if isinstance(exc, NameError) and exc.name in ("data", "rows", "header") and books:
        book = next(iter(books))
        example = f"SHEETS[{book!r}][{next(iter(books[book]), 'Sheet1')!r}]"
        return LOADED_HINT.format(name=exc.name, example=example)
    return ""


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
        scope["SHEETS"] = LOADED = {book: rows(book) for book in books}
    exec(compile(SOURCE, "<stdin>", "exec"), scope)
