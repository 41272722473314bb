"""Checks a playbook runs on a task's outcome: commands, files left alone, outputs made."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spud.core.protocols import CheckResult
from spud.sandbox.bubblewrap import Sandbox
from spud.tools.office.slips import Slip, formula_slips

Check = Callable[[], CheckResult]
PYTEST_TOTALS = re.compile(r"\d+ (?:passed|failed|errors?|skipped)[^\n]*")
# The venv's third-party pytest plugins take seconds to load on every run; checks skip them.
QUIET_PYTEST = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "


def quiet_pytest(command: str) -> str:
    return QUIET_PYTEST + command if "pytest" in command else command


def command_check(sandbox: Sandbox, command: str, timeout_s: float = 120) -> Check:
    """The command must exit 0 in the sandbox; its output's tail is the detail."""

    def run() -> CheckResult:
        res = sandbox.execute(
            quiet_pytest(command), timeout_s=min(timeout_s, sandbox.config.timeout_s)
        )
        passed = res.exit_code == 0 and not res.timed_out
        tail = res.output.strip()[-1500:]
        if res.timed_out:
            tail += f"\n[killed after {timeout_s:g}s]"
        return CheckResult(name=f"`{command}`", passed=passed, detail=summarise(tail, passed))

    return run


def summarise(output: str, passed: bool) -> str:
    """A pytest run's totals line when passed; the whole tail when not."""
    if passed:
        totals = PYTEST_TOTALS.findall(output)
        return totals[-1].strip("= ") if totals else "exit code 0"
    return output


def unchanged_check(workspace: Path, paths: list[str]) -> Check:
    """Files (the tests) must stay as they were when the run began."""
    before = {p: _hash(workspace / p) for p in paths}

    def run() -> CheckResult:
        changed = [p for p, h in before.items() if _hash(workspace / p) != h]
        detail = (
            f"changed: {', '.join(changed)}; put them back as they were"
            if changed
            else ", ".join(paths)
        )
        return CheckResult(name="tests left unchanged", passed=not changed, detail=detail)

    return run


def changed_check(workspace: Path, paths: list[str]) -> Check:
    """Files the task edits in place must not be as they were when the run began."""
    before = {p: _hash(workspace / p) for p in paths}

    def run() -> CheckResult:
        same = [p for p, h in before.items() if _hash(workspace / p) == h]
        detail = (
            f"{', '.join(same)} still as before: the task asks to change it" if same else "changed"
        )
        return CheckResult(name=f"edited {', '.join(paths)}", passed=not same, detail=detail)

    return run


def outputs_check(workspace: Path, paths: list[str]) -> Check:
    """Files the task asks for must exist and hold something: not empty, a CSV not only its
    header row, a JSON file not an empty list or object (a 1.5B's script that matched no line
    wrote the header alone, and its run ended `finished`)."""

    def run() -> CheckResult:
        missing = [p for p in paths if not (workspace / p).is_file()]
        problems = [f"{p} was not created" for p in missing]
        problems += [
            f"{p} {why}" for p in paths if p not in missing and (why := _hollow(workspace / p))
        ]
        return CheckResult(
            name=f"output {', '.join(paths)}",
            passed=not problems,
            detail="; ".join(problems) or "present",
        )

    return run


def _hollow(path: Path) -> str:
    """Why an output holds nothing ('' when it holds something)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""  # a binary file (a workbook): its own checks look inside
    if not text.strip():
        return "is empty"
    kind = path.suffix.lower()
    if kind in (".csv", ".tsv") and len([line for line in text.splitlines() if line.strip()]) < 2:
        return "holds only one line (a header row and no data rows)"
    if kind == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            return ""  # not JSON: the task's own checks say what is wrong with it
        if data in ([], {}):
            return f"holds only {text.strip()}: no data"
    return ""


def office_check(
    workspace: Path,
    paths: list[str],
    fixing: bool = False,
    keep_sheets: bool = True,
    named: list[str] | None = None,
) -> Check:
    """Office files are reopened, recalculated and checked (no error cells, readable), and
    workbooks for formula slips: those the run made, or all of them when the task is to fix
    the workbook's formulas (slips the file held before are otherwise its owner's business).
    With keep_sheets, a workbook must keep the sheets it had (a 1.5B's pandas to_excel
    replaced a workbook by its one new sheet, and the run ended `finished`). Each sheet the
    task names for its workbooks to have (`named`, see named_sheets) must be in one of them
    (a 1.5B's expenses.xlsx kept openpyxl's "Sheet" where the task named it Expenses)."""
    from spud.tools.office.verify import verify_file

    before = set() if fixing else {s for p in paths for s in _slips(workspace, p)}
    sheets = {p: _sheets(workspace, p) for p in paths} if keep_sheets else {}

    def run() -> CheckResult:
        problems: list[str] = []
        books = {p: have for p in paths if (have := _sheets(workspace, p))}
        for name in named or []:
            if books and not any(name in have for have in books.values()):
                has = "; ".join(f"{p} has {', '.join(have)}" for p, have in books.items())
                problems.append(f"the task names a sheet {name!r}, and no workbook has it ({has})")
        for p in paths:
            if (workspace / p).is_file():
                v = verify_file(workspace / p)
                problems += [f"{p}: {x}" for x in v.problems]
                problems += [f"{p}: {s}" for s in _slips(workspace, p) if s not in before]
                if lost := [s for s in sheets.get(p, []) if s not in _sheets(workspace, p)]:
                    names = ", ".join(repr(s) for s in lost)
                    problems.append(
                        f"{p}: its sheet(s) {names} are gone, and the task does not ask to "
                        "remove them: write the workbook with all its sheets (openpyxl: load "
                        "it, change it, save it)"
                    )
        return CheckResult(
            name=f"verify {', '.join(paths)}",
            passed=not problems,
            detail="; ".join(problems[:8]) or "no errors",
        )

    return run


# "a new sheet named Summary", "one sheet called 'Q3 totals'"
SHEET_NAMED = re.compile(
    r"\bsheet (?:named|called|titled) (?:\"([^\"\n]+)\"|'([^'\n]+)'|`([^`\n]+)`|(\w+))"
)


def named_sheets(task: str) -> list[str]:
    """The sheets a task names for its workbooks to have."""
    return [next(g for g in m.groups() if g) for m in SHEET_NAMED.finditer(task)]


def ranges_check(workspace: Path, paths: list[str], task: str) -> Check | None:
    """A check that each range the task names (C2:C5, not one cell) that was empty when the run
    began is not left filled in part (a 1.5B wrote C2:C4 of the task's "C2:C5 its average",
    and the run ended `finished`), in every workbook the task names; None when it names no
    range. A single cell is not checked: a 1.5B told of an empty label cell did worse."""
    from spud.playbooks.sheet_shapes import TASK_CELLS, cell_order, named_cells

    ranges = [m[0] for m in TASK_CELLS.finditer(task) if m[3]]
    books = [p for p in paths if p.lower().endswith((".xlsx", ".xlsm"))]
    if not ranges or not books:
        return None

    def state(rel: str) -> dict[tuple[str, str], list[str]]:
        """(sheet, range): its empty cells, for every sheet of the workbook now."""
        from spud.tools.office.workbook import OfficeError, load_workbook

        try:
            book = load_workbook(workspace / rel)
        except (OfficeError, OSError):
            return {}
        return {
            (sheet, r): sorted(
                (c for c in named_cells(r) if book[sheet][c].value is None), key=cell_order
            )
            for sheet in book.sheetnames
            for r in ranges
        }

    before = {rel: state(rel) for rel in books if (workspace / rel).is_file()}

    def run() -> CheckResult:
        found = []
        for rel in books:
            for (sheet, r), empty in state(rel).items():
                was = before.get(rel, {}).get((sheet, r))
                if (
                    empty
                    and len(empty) < len(named_cells(r))
                    and (was is None or len(was) == len(named_cells(r)))
                ):
                    left = ", ".join(empty[:4]) + (" ..." if len(empty) > 4 else "")
                    found.append(f"{sheet}!{left} empty, in {r}, which the task names")
        return CheckResult(
            name="the task's ranges",
            passed=not found,
            detail="; ".join(found[:6]) or "filled",
        )

    return run


def _sheets(workspace: Path, rel: str) -> list[str]:
    """A workbook's sheet names; none for another kind of file or an unreadable one."""
    from spud.tools.office.workbook import OfficeError, load_workbook

    if not rel.lower().endswith((".xlsx", ".xlsm")) or not (workspace / rel).is_file():
        return []
    try:
        return load_workbook(workspace / rel).sheetnames
    except OfficeError:
        return []


def _slips(workspace: Path, rel: str) -> list[Slip]:
    """A workbook's formula slips now; none for another kind of file or an unreadable one."""
    from spud.tools.office.workbook import OfficeError, load_workbook

    if not rel.lower().endswith(".xlsx") or not (workspace / rel).is_file():
        return []
    try:
        return formula_slips(load_workbook(workspace / rel))
    except OfficeError:
        return []


@dataclass
class TaskVerifier:
    """Runs a playbook's checks before finishing, and a quick one after each change."""

    checks: list[Check]
    quick: Callable[..., str] | None = None
    runs: list[list[CheckResult]] = field(default_factory=list)

    def check(self) -> list[CheckResult]:
        results = [c() for c in self.checks]
        self.runs.append(results)
        return results

    def after_change(self) -> str:
        return self.quick() if self.quick else ""


def tests_quick(sandbox: Sandbox, command: str) -> Callable[..., str]:
    """After a change: the test totals and the first failures, in a few lines."""

    def run(label: str = "tests after this change") -> str:
        res = sandbox.execute(quiet_pytest(command), timeout_s=min(60, sandbox.config.timeout_s))
        lines = res.output.strip().splitlines()
        failures = [ln for ln in lines if ln.startswith(("FAILED", "ERROR", "E "))][:6]
        totals = PYTEST_TOTALS.findall(res.output)
        head = totals[-1].strip("= ") if totals else f"exit code {res.exit_code}"
        if res.exit_code == 0:
            return f"[{label}: {head}]"
        shown = "\n".join(failures) or "\n".join(lines[-8:])
        return f"[{label}: {head}]\n{shown}"

    return run


def _hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"
