"""Reference solutions for the second batch of office probes (bench/probe_suite/office_batch2.toml)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import openpyxl
from openpyxl.styles import Font


def overtime_pay(ws: Path) -> None:
    wb = openpyxl.load_workbook(ws / "payroll.xlsx")
    sheet = wb["Hours"]
    sheet["E1"], sheet["F1"], sheet["G1"] = "Overtime hours", "Pay", "Share of pay"
    for r in range(2, 30):
        sheet[f"E{r}"] = f"=MAX(0,C{r}-Settings!$B$2)"
        sheet[f"F{r}"] = f"=ROUND((C{r}-E{r})*D{r}+E{r}*D{r}*Settings!$B$3,2)"
        sheet[f"G{r}"] = f"=F{r}/$F$30"
        sheet[f"G{r}"].number_format = "0.0%"
    sheet["A30"] = "Total"
    for col in "CEF":
        sheet[f"{col}30"] = f"=SUM({col}2:{col}29)"
    wb.save(ws / "payroll.xlsx")


def order_lookup(ws: Path) -> None:
    wb = openpyxl.load_workbook(ws / "orders.xlsx")
    orders = wb["Orders"]
    orders["E1"], orders["F1"], orders["G1"] = "Customer", "Discount", "Net amount"
    for r in range(2, 34):
        orders[f"E{r}"] = f'=IFERROR(VLOOKUP(C{r},Customers!$A$2:$C$13,2,FALSE),"Unknown")'
        orders[f"F{r}"] = f"=IFERROR(VLOOKUP(C{r},Customers!$A$2:$C$13,3,FALSE),0)"
        orders[f"G{r}"] = f"=ROUND(D{r}*(1-F{r}),2)"
    orders["A34"], orders["D34"], orders["G34"] = "Total", "=SUM(D2:D33)", "=SUM(G2:G33)"
    customers = wb["Customers"]
    customers["D1"] = "Orders"
    for r in range(2, 14):
        customers[f"D{r}"] = f"=COUNTIF(Orders!$C$2:$C$33,A{r})"
    wb.save(ws / "orders.xlsx")


def fix_commission(ws: Path) -> None:
    wb = openpyxl.load_workbook(ws / "sales.xlsx")
    deals = wb["Deals"]
    for r in range(2, 38):
        deals[f"F{r}"] = f"=ROUND(E{r}*VLOOKUP(C{r},Rates!$A$2:$B$5,2,FALSE),2)"
    deals["F38"] = "=SUM(F2:F37)"
    by_rep = wb["By rep"]
    for r in range(2, 8):
        by_rep[f"C{r}"] = f"=SUMIF(Deals!$B$2:$B$37,A{r},Deals!$E$2:$E$37)"
        by_rep[f"D{r}"] = f"=SUMIF(Deals!$B$2:$B$37,A{r},Deals!$F$2:$F$37)"
    wb.save(ws / "sales.xlsx")


def overdue_invoices(ws: Path) -> None:
    wb = openpyxl.load_workbook(ws / "invoices.xlsx")
    emails = {row[0]: row[2] for row in wb["Clients"].iter_rows(min_row=2, values_only=True)}
    invoices = wb["Invoices"].iter_rows(min_row=2, values_only=True)
    overdue = sorted(
        (i for i in invoices if i[5] == "no" and i[3] < "2026-11-15"), key=lambda i: i[3]
    )
    sheet = wb.create_sheet("Chase list")
    sheet.append(["Invoice", "Client", "Due", "Amount", "Email"])
    for invoice, client, _, due, amount, _ in overdue:
        sheet.append([invoice, client, due, amount, emails[client]])
    total = len(overdue) + 2
    sheet.append(["Total", None, None, f"=SUM(D2:D{total - 1})"])
    for r in range(2, total + 1):
        sheet[f"D{r}"].number_format = "#,##0.00"
    wb.save(ws / "invoices.xlsx")


def catalogue_json(ws: Path) -> None:
    items = json.loads((ws / "catalogue.json").read_text())["items"]
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "Items"
    sheet.append(["SKU", "Name", "Category", "Price", "Stock", "Stock value"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r, item in enumerate(items, 2):
        row = [item["sku"], item["name"], item["category"], item["price"], item["stock"]]
        sheet.append([*row, f"=D{r}*E{r}"])
    last = len(items) + 1
    sheet.append(["Total", None, None, None, f"=SUM(E2:E{last})", f"=SUM(F2:F{last})"])
    for r in range(2, last + 2):
        sheet[f"D{r}"].number_format = sheet[f"F{r}"].number_format = "#,##0.00"

    def column(col: str) -> str:
        return f"Items!${col}$2:${col}${last}"

    cats = wb.create_sheet("Categories")
    cats.append(["Category", "Items", "Units in stock", "Stock value", "Average price"])
    for r, name in enumerate(sorted({i["category"] for i in items}), 2):
        where = f"{column('C')},A{r}"
        cats.append(
            [
                name,
                f"=COUNTIF({where})",
                f"=SUMIF({where},{column('E')})",
                f"=SUMIF({where},{column('F')})",
                f"=ROUND(AVERAGEIF({where},{column('D')}),2)",
            ]
        )
    wb.save(ws / "catalogue.xlsx")


def docx_fleet(ws: Path) -> None:
    import docx

    with (ws / "fleet.csv").open(newline="") as f:
        fleet = list(csv.DictReader(f))
    km = sum(int(v["km"]) for v in fleet)
    litres = sum(Decimal(v["fuel_litres"]) for v in fleet)
    depots: dict[str, list[int]] = {}
    for v in fleet:
        depots.setdefault(v["depot"], []).append(int(v["km"]))
    doc = docx.Document()
    doc.add_heading("Fleet report: November 2026", 1)
    for line in (
        f"Vehicles: {len(fleet)}",
        f"Total distance: {km} km",
        f"Fuel used: {litres} litres",
        f"Average consumption: {float(litres) / km * 100:.1f} l/100 km",
    ):
        doc.add_paragraph(line)
    table = doc.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Depot", "Vehicles", "Km"), strict=True):
        cell.text = text
    for depot, kms in sorted(depots.items(), key=lambda d: -sum(d[1])):
        for cell, text in zip(table.add_row().cells, (depot, len(kms), sum(kms)), strict=True):
            cell.text = str(text)
    for v in fleet:
        if v["type"] == "van" and int(v["km"]) > 4000:
            doc.add_paragraph(v["reg"], style="List Bullet")
    doc.save(ws / "fleet_report.docx")


def pptx_survey(ws: Path) -> None:
    from pptx import Presentation

    wb = openpyxl.load_workbook(ws / "survey.xlsx")
    responses = list(wb["Responses"].iter_rows(min_row=2, values_only=True))
    headcount = sum(h for _, h in wb["Offices"].iter_rows(min_row=2, values_only=True))
    scores: dict[str, list[int]] = {}
    for _, office, _, score, _ in responses:
        scores.setdefault(office, []).append(score)
    averages = sorted(((sum(s) / len(s), office) for office, s in scores.items()), reverse=True)
    n, yes = len(responses), sum(r[4] == "yes" for r in responses)
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[0])
    first.shapes.title.text = "Staff survey 2026"
    first.placeholders[1].text = "What our people told us"
    for title, lines in (
        (
            "Response",
            [
                f"Responses: {n}",
                f"Response rate: {round(100 * n / headcount)}%",
                f"Would recommend: {yes} of {n}",
            ],
        ),
        ("Scores by office", [f"{office}: {avg:.1f}" for avg, office in averages]),
        ("Next steps", ["Share each office's results with its managers"]),
    ):
        bullet_slide(deck, title, lines)
    deck.save(ws / "survey.pptx")


def bullet_slide(deck, title: str, lines: list[str]) -> None:
    """A title-and-bullets slide at the end of a python-pptx deck."""
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = title
    body = slide.placeholders[1].text_frame
    body.text = lines[0]
    for line in lines[1:]:
        body.add_paragraph().text = line


SOLUTIONS_OFFICE2 = {
    "probe2-overtime-pay": overtime_pay,
    "probe2-order-lookup": order_lookup,
    "probe2-fix-commission": fix_commission,
    "probe2-overdue-invoices": overdue_invoices,
    "probe2-catalogue-json": catalogue_json,
    "probe2-docx-fleet": docx_fleet,
    "probe2-pptx-survey": pptx_survey,
}
