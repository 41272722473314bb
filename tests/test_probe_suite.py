"""The probe tasks in bench/probe_suite: a reference solution passes, doing nothing fails."""

from __future__ import annotations

import configparser
import csv
import json
from pathlib import Path

import openpyxl
import pytest
from openpyxl.styles import Font
from probe_solutions_files2 import SOLUTIONS_FILES2
from probe_solutions_office2 import SOLUTIONS_OFFICE2, bullet_slide

from spud.eval.checks import CheckContext, run_checks
from spud.eval.runner import prepare
from spud.eval.suite import load_suite

SUITE = load_suite(str(Path(__file__).parents[1] / "bench" / "probe_suite"))
TASKS = {t.id: t for t in SUITE.tasks}


def rows(path: Path, sep: str = ",") -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter=sep))


def write_csv(path: Path, header: list[str], body: list[list]) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *body])


def tsv_summary(ws: Path) -> None:
    orders = rows(ws / "orders.tsv", "\t")
    paid: dict[str, float] = {}
    for r in orders:
        if r["status"] == "paid":
            paid[r["customer"]] = paid.get(r["customer"], 0) + float(r["amount"])
    count: dict[str, int] = {}
    for r in orders:
        count[r["status"]] = count.get(r["status"], 0) + 1
    summary = {"total_paid": round(sum(paid.values()), 2), "count_by_status": count}
    summary["top_customer"] = max(paid, key=lambda c: paid[c])
    (ws / "summary.json").write_text(json.dumps(summary))


def ini_to_env(ws: Path) -> None:
    ini = configparser.ConfigParser()
    ini.read(ws / "settings.ini")
    lines = [f"{s.upper()}_{k.upper()}={v}" for s in ini.sections() for k, v in ini[s].items()]
    (ws / "settings.env").write_text("\n".join(lines) + "\n")


def split_by_country(ws: Path) -> None:
    contacts = rows(ws / "contacts.csv")
    (ws / "by_country").mkdir()
    for country in dict.fromkeys(r["country"] for r in contacts):
        mine = [list(r.values()) for r in contacts if r["country"] == country]
        write_csv(ws / "by_country" / f"{country.lower()}.csv", list(contacts[0]), mine)


def log_errors(ws: Path) -> None:
    log = (ws / "app.log").read_text().splitlines()
    errors = [line.split("[ERROR] ", 1)[1] for line in log if "[ERROR] " in line]
    (ws / "errors.txt").write_text("\n".join([*errors, f"Errors: {len(errors)}"]) + "\n")


def merge_stock(ws: Path) -> None:
    a = {r["sku"]: r for r in rows(ws / "warehouse_a.csv")}
    b = {r["sku"]: r for r in rows(ws / "warehouse_b.csv")}
    body = []
    for sku in sorted(a.keys() | b.keys()):
        qa, qb = int(a[sku]["qty"]) if sku in a else 0, int(b[sku]["qty"]) if sku in b else 0
        body.append([sku, (a.get(sku) or b[sku])["name"], qa, qb, qa + qb])
    write_csv(ws / "total_stock.csv", ["sku", "name", "qty_a", "qty_b", "total"], body)


def md_table(ws: Path) -> None:
    lines = (ws / "team.md").read_text().splitlines()
    table = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if ln.startswith("| ")]
    body = [r for r in table[1:] if r[2] != "Remote"]
    write_csv(ws / "office_team.csv", ["name", "team", "office", "since"], body)


def budget_diff(ws: Path) -> None:
    wb = openpyxl.load_workbook(ws / "budget.xlsx")
    sheet = wb["Budget"]
    sheet["D1"], sheet["E1"] = "Difference", "Over budget"
    for r in range(2, 14):
        sheet[f"D{r}"], sheet[f"E{r}"] = f"=C{r}-B{r}", f'=IF(C{r}>B{r},"yes","no")'
    wb.save(ws / "budget.xlsx")


def json_to_xlsx(ws: Path) -> None:
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "Staff"
    sheet.append(["Name", "Team", "Salary"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for p in json.loads((ws / "staff.json").read_text()):
        sheet.append([p["name"], p["team"], p["salary"]])
    wb.save(ws / "staff.xlsx")


def docx_tickets(ws: Path) -> None:
    import docx

    tickets = rows(ws / "tickets.csv")
    open_ = sorted((t for t in tickets if t["state"] == "open"), key=lambda t: t["opened"])
    doc = docx.Document()
    doc.add_heading("Support tickets", 1)
    for line in (f"Open: {len(open_)}", f"Closed: {len(tickets) - len(open_)}"):
        doc.add_paragraph(line)
    doc.add_paragraph(f"Oldest open: {open_[0]['id']}")
    doc.save(ws / "report.docx")


def lookup_price(ws: Path) -> None:
    wb = openpyxl.load_workbook(ws / "orders.xlsx")
    sheet = wb["Orders"]
    sheet["D1"], sheet["E1"] = "Price", "Amount"
    for r in range(2, 17):
        sheet[f"D{r}"] = f"=VLOOKUP(B{r},Prices!$A$2:$B$6,2,FALSE)"
        sheet[f"E{r}"] = f"=C{r}*D{r}"
    wb.save(ws / "orders.xlsx")


def grades(ws: Path) -> None:
    wb = openpyxl.load_workbook(ws / "grades.xlsx")
    sheet = wb["Scores"]
    sheet["E1"], sheet["F1"] = "Average", "Grade"
    last = sheet.max_row
    for r in range(2, last + 1):
        sheet[f"E{r}"] = f"=AVERAGE(B{r}:D{r})"
        sheet[f"F{r}"] = f'=IF(E{r}>=80,"A",IF(E{r}>=65,"B","C"))'
    stats = wb.create_sheet("Stats")
    stats["A1"], stats["B1"] = "Class average", f"=AVERAGE(Scores!E2:E{last})"
    wb.save(ws / "grades.xlsx")


def projects_deck(ws: Path) -> None:
    from pptx import Presentation

    projects = rows(ws / "projects.csv")
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[0])
    first.shapes.title.text, first.placeholders[1].text = "Projects", "Where we stand"
    for title, lines in (
        (
            "Status",
            [
                f"{s.capitalize()}: {sum(p['status'] == s for p in projects)}"
                for s in ("on track", "late", "done")
            ],
        ),
        ("Budget", [f"Total budget: {sum(int(p['budget']) for p in projects)}"]),
    ):
        bullet_slide(deck, title, lines)
    deck.save(ws / "status.pptx")


SOLUTIONS = {
    "probe-tsv-summary": tsv_summary,
    "probe-ini-to-env": ini_to_env,
    "probe-split-by-country": split_by_country,
    "probe-log-errors": log_errors,
    "probe-merge-stock": merge_stock,
    "probe-md-table": md_table,
    "probe-budget-diff": budget_diff,
    "probe-json-to-xlsx": json_to_xlsx,
    "probe-docx-tickets": docx_tickets,
    "probe-lookup-price": lookup_price,
    "probe-grades": grades,
    "probe-projects-deck": projects_deck,
    **SOLUTIONS_FILES2,
    **SOLUTIONS_OFFICE2,
}


def checked(task_id: str, ws: Path, solve: bool) -> str | None:
    task = TASKS[task_id]
    prepare(task, ws)
    original = {
        p.relative_to(ws).as_posix(): p.read_text(errors="replace")
        for p in ws.rglob("*")
        if p.is_file()
    }
    if solve:
        SOLUTIONS[task_id](ws)
    return run_checks(CheckContext(workspace=ws, original=original), task.checks, SUITE.checkers)


def test_every_file_and_office_probe_has_a_solution():
    assert set(SOLUTIONS) == {t.id for t in SUITE.tasks if t.category in ("files", "office")}


@pytest.mark.parametrize("task_id", sorted(SOLUTIONS))
def test_a_probes_reference_solution_passes_and_doing_nothing_fails(task_id: str, tmp_path: Path):
    assert checked(task_id, tmp_path / "done", solve=True) is None
    assert checked(task_id, tmp_path / "none", solve=False) is not None


def test_a_probe_with_typed_in_values_or_a_wrong_order_fails(tmp_path: Path):
    ws = tmp_path / "typed"
    prepare(TASKS["probe-budget-diff"], ws)
    wb = openpyxl.load_workbook(ws / "budget.xlsx")
    sheet = wb["Budget"]
    sheet["D1"], sheet["E1"] = "Difference", "Over budget"
    for r in range(2, 14):
        diff = sheet[f"C{r}"].value - sheet[f"B{r}"].value
        sheet[f"D{r}"], sheet[f"E{r}"] = diff, "yes" if diff > 0 else "no"
    wb.save(ws / "budget.xlsx")
    task = TASKS["probe-budget-diff"]
    assert run_checks(CheckContext(workspace=ws), task.checks, SUITE.checkers) == (
        "Budget!D2 holds 1250, not a formula"
    )
    ws = tmp_path / "order"
    prepare(TASKS["probe-md-table"], ws)
    md_table(ws)
    lines = (ws / "office_team.csv").read_text().splitlines()
    (ws / "office_team.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    task = TASKS["probe-md-table"]
    assert run_checks(CheckContext(workspace=ws), task.checks, SUITE.checkers) is not None
