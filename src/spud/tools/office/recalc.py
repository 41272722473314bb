"""The recalculation engine: every formula of a workbook computed by `formulas`, errors listed."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from spud.tools.office.formula import (
    formula_shape,
    formula_text,
    one_sheet_ranges,
    quote_sheet,
    split_ref,
)

MAX_RECALC_FORMULAS = 300_000
MAX_ERRORS_SHOWN = 20
ERROR_CODES = ("#REF!", "#DIV/0!", "#NAME?", "#VALUE!", "#N/A", "#NUM!", "#NULL!")
CIRCULAR = "#CIRCULAR!"
_ADDRESS_DEPENDENT = re.compile(
    r"\b(ROW|COLUMN|ROWS|COLUMNS|OFFSET|INDIRECT|CELL|ADDRESS)\s*\(", re.I
)


@dataclass
class CellError:
    """An error value found after recalculation."""

    sheet: str
    cell: str
    error: str
    formula: str = ""
    why: str = ""  # e.g. the text cells a #VALUE! formula reads

    def __str__(self) -> str:
        where = f"{quote_sheet(self.sheet)}!{self.cell}"
        what = "circular reference" if self.error == CIRCULAR else self.error
        why = f"; {self.why}" if self.why else ""
        return f"{where}: {what}" + (f" (formula {self.formula}{why})" if self.formula else "")


@dataclass
class Recalc:
    """The computed value of every formula cell, and the errors among them."""

    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    errors: list[CellError] = field(default_factory=list)
    formulas: int = 0
    skipped: str = ""

    def value(self, sheet: str, cell: str) -> Any:
        return self.values.get((sheet, cell.replace("$", "").upper()))


@contextmanager
def _quiet() -> Iterator[None]:
    log = logging.getLogger("schedula")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def _plain(value: Any) -> Any:
    """A formulas result as a plain Python value (errors become their code)."""
    import numpy as np
    from formulas.tokens.operand import XlError

    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.flat[0]
    if isinstance(value, XlError):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


class Engine:
    """Recalculates an openpyxl workbook: compiles each distinct formula shape once."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb
        self.sheets = {ws.title.upper(): ws for ws in wb.worksheets}
        self.cells: dict[tuple[str, str], Any] = {}
        self.names = self._names()

    def _names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for name, dn in self.wb.defined_names.items():
            names[name.upper()] = dn.attr_text
        return names

    def run(self) -> Recalc:
        import formulas
        import schedula as sh
        from openpyxl.utils import get_column_letter

        out = Recalc()
        formula_cells: dict[tuple[str, int, int], str] = {}
        for ws in self.wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    if c.value is None:
                        continue
                    text = formula_text(c.value)
                    if text is None:
                        self.cells[(ws.title, c.coordinate)] = c.value
                    else:
                        formula_cells[(ws.title, c.row, c.column)] = one_sheet_ranges(text)
        out.formulas = len(formula_cells)
        if out.formulas > MAX_RECALC_FORMULAS:
            out.skipped = f"{out.formulas} formulas is over the recalculation limit"
            return out
        parser = formulas.Parser()
        cache: dict[str, Any] = {}
        compiled: dict[tuple[str, int, int], tuple[Any, list[str]]] = {}
        with _quiet():
            for key, text in formula_cells.items():
                compiled[key] = self._compile(parser, cache, text, key[1], key[2])
        deps = {k: self._deps(k[0], refs, formula_cells) for k, (_, refs) in compiled.items()}
        order, cyclic = _topo(deps)
        empty = sh.EMPTY
        with _quiet():
            for key in order:
                sheet, r, c = key
                coord = f"{get_column_letter(c)}{r}"
                func, refs = compiled[key]
                if func is None:
                    value: Any = refs[0] if refs else "#NAME?"
                else:
                    try:
                        args = [self._input(sheet, ref, empty) for ref in refs]
                        value = _plain(func(*args))
                    except Exception as exc:
                        value = "#NAME?" if _not_implemented(exc) else "#VALUE!"
                self.cells[(sheet, coord)] = value
                out.values[(sheet, coord)] = value
        for sheet, r, c in cyclic:
            coord = f"{get_column_letter(c)}{r}"
            self.cells[(sheet, coord)] = CIRCULAR
            out.values[(sheet, coord)] = CIRCULAR
        for (sheet, r, c), text in formula_cells.items():
            coord = f"{get_column_letter(c)}{r}"
            v = out.values.get((sheet, coord))
            if isinstance(v, str) and (v in ERROR_CODES or v == CIRCULAR):
                why = self._texts(sheet, compiled[(sheet, r, c)][1]) if v == "#VALUE!" else ""
                out.errors.append(CellError(sheet, coord, v, text, why))
        return out

    def _compile(
        self, parser: Any, cache: dict[str, Any], text: str, row: int, col: int
    ) -> tuple[Any, list[str]]:
        try:
            shape, refs = formula_shape(text, row, col)
        except Exception:
            shape, refs = "", []
        if shape and shape in cache and not _ADDRESS_DEPENDENT.search(text):
            return cache[shape], refs
        try:
            func = parser.ast(text)[1].compile()
        except Exception as exc:
            return None, ["#NAME?" if "function" in str(exc).lower() else "#VALUE!"]
        inputs = list(func.inputs)
        if shape and inputs == refs and not _ADDRESS_DEPENDENT.search(text):
            cache[shape] = func
        return func, inputs

    def _texts(self, here: str, refs: list[str]) -> str:
        """The single cells a formula reads that hold text, the usual cause of a #VALUE!
        (a 1.5B wrote =E1*F1 into a header cell, E1 and F1 being the headers)."""
        from openpyxl.utils import get_column_letter

        shown = []
        for ref in refs:
            found = self._resolve(here, ref)
            if found is None or found[1][:2] != found[1][2:]:
                continue
            ws, (col, row, _, _) = found
            coord = f"{get_column_letter(col)}{row}"
            v = self.cells.get((ws.title, coord))
            if isinstance(v, str) and v not in ERROR_CODES and v != CIRCULAR:
                shown.append(f"{coord} is the text {v[:40]!r}")
        return ", ".join(shown[:3])

    def _resolve(self, here: str, ref: str) -> tuple[Any, tuple[int, int, int, int]] | None:
        """The sheet and bounds (min_col, min_row, max_col, max_row) a reference covers."""
        from openpyxl.utils import range_boundaries

        sheet, rng = split_ref(ref)
        if sheet is None and rng.upper() in self.names:
            target = self.names[rng.upper()]
            return None if "!" not in target else self._resolve(here, target)
        ws = self.sheets.get((sheet or here).upper())
        if ws is None:
            return None
        try:
            b = range_boundaries(rng.replace("$", ""))
        except ValueError:
            return None
        min_col, min_row, max_col, max_row = b
        return ws, (
            min_col or 1,
            min_row or 1,
            max_col or max(ws.max_column, 1),
            max_row or max(ws.max_row, 1),
        )

    def _deps(
        self, sheet: str, refs: list[str], formula_cells: dict[tuple[str, int, int], str]
    ) -> set[tuple[str, int, int]]:
        deps: set[tuple[str, int, int]] = set()
        for ref in refs:
            found = self._resolve(sheet, ref)
            if found is None:
                continue
            ws, (c1, r1, c2, r2) = found
            size = (c2 - c1 + 1) * (r2 - r1 + 1)
            if size <= 64:
                for r in range(r1, r2 + 1):
                    for c in range(c1, c2 + 1):
                        if (ws.title, r, c) in formula_cells:
                            deps.add((ws.title, r, c))
            else:
                for key in self._by_sheet(formula_cells).get(ws.title, ()):
                    if r1 <= key[1] <= r2 and c1 <= key[2] <= c2:
                        deps.add(key)
        return deps

    def _by_sheet(
        self, formula_cells: dict[tuple[str, int, int], str]
    ) -> dict[str, list[tuple[str, int, int]]]:
        if not hasattr(self, "_sheet_index"):
            index: dict[str, list[tuple[str, int, int]]] = {}
            for key in formula_cells:
                index.setdefault(key[0], []).append(key)
            self._sheet_index = index
        return self._sheet_index

    def _input(self, here: str, ref: str, empty: Any) -> Any:
        import numpy as np
        from formulas.tokens.operand import XlError

        found = self._resolve(here, ref)
        if found is None:
            return np.array([[XlError("#REF!")]], dtype=object)
        ws, (c1, r1, c2, r2) = found
        from openpyxl.utils import get_column_letter

        letters = [get_column_letter(c) for c in range(c1, c2 + 1)]
        arr = np.empty((r2 - r1 + 1, c2 - c1 + 1), dtype=object)
        cells = self.cells
        for i, r in enumerate(range(r1, r2 + 1)):
            for j, letter in enumerate(letters):
                v = cells.get((ws.title, f"{letter}{r}"), empty)
                if isinstance(v, str) and (v in ERROR_CODES or v == CIRCULAR):
                    v = XlError("#REF!" if v == CIRCULAR else v)
                arr[i, j] = v
        return arr


def _not_implemented(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NotImplementedError) or "NotImplementedError" in repr(seen.args):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _topo(
    deps: dict[tuple[str, int, int], set[tuple[str, int, int]]],
) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """Evaluation order (Kahn); cells left over are on or behind a circular reference."""
    users: dict[tuple[str, int, int], list[tuple[str, int, int]]] = {}
    waiting = {k: len(v) for k, v in deps.items()}
    for k, v in deps.items():
        for d in v:
            users.setdefault(d, []).append(k)
    ready = [k for k, n in waiting.items() if n == 0]
    order: list[tuple[str, int, int]] = []
    while ready:
        k = ready.pop()
        order.append(k)
        for u in users.get(k, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    done = set(order)
    return order, [k for k in deps if k not in done]


def recalculate(wb: Any) -> Recalc:
    """Compute every formula of an openpyxl workbook (loaded with formulas, not data_only)."""
    return Engine(wb).run()


def errors_text(recalc: Recalc, limit: int = MAX_ERRORS_SHOWN) -> str:
    """One line per error cell, capped."""
    if recalc.skipped:
        return f"not recalculated: {recalc.skipped}"
    if not recalc.errors:
        return f"recalculated {recalc.formulas} formulas: no error cells"
    lines = [f"recalculated {recalc.formulas} formulas: {len(recalc.errors)} error cells:"]
    lines += [f"  {e}" for e in recalc.errors[:limit]]
    if len(recalc.errors) > limit:
        lines.append(f"  [and {len(recalc.errors) - limit} more]")
    return "\n".join(lines)
