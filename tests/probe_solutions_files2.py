"""Reference solutions of the probe tasks in bench/probe_suite/files_batch2.toml."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    """A Decimal rounded half up to cents, as text ('12.30')."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def expense_summary(ws: Path) -> None:
    text = (ws / "expenses.csv").read_text()
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = [h.strip() for h in next(reader)]
    claims, missing = [], []
    for raw in reader:
        if not any(cell.strip() for cell in raw):
            continue
        row = dict(zip(header, (cell.strip() for cell in raw), strict=True))
        if not row["amount"]:
            missing.append(row["id"])
            continue
        category = " ".join(row["category"].split()).lower()
        claims.append((row["employee"], category, Decimal(row["amount"])))
    by_category: dict[str, list[Decimal]] = defaultdict(list)
    by_employee: dict[str, Decimal] = defaultdict(Decimal)
    for employee, category, amount in claims:
        by_category[category].append(amount)
        by_employee[employee] += amount
    total = sum(amount for _, _, amount in claims)
    categories = sorted(by_category.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    summary = {
        "claims": len(claims),
        "total": float(money(total)),
        "average_claim": float(money(total / len(claims))),
        "by_category": [
            {"category": name, "claims": len(amounts), "total": float(money(sum(amounts)))}
            for name, amounts in categories
        ],
        "by_employee": {name: float(money(amount)) for name, amount in sorted(by_employee.items())},
        "missing_amount": missing,
    }
    (ws / "expense_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


LOG_LINE = re.compile(
    r"^(?P<ip>\S+) \S+ \S+ \[(?P<day>[^:\]]+):(?P<hour>\d{2}):\d{2}:\d{2} [+-]\d{4}\] "
    r'"(?P<method>[A-Z]+) (?P<target>\S+) [^"]*" (?P<status>\d{3}) (?P<size>\d+|-)'
)


def access_report(ws: Path) -> None:
    hits, skipped = [], 0
    for line in (ws / "access.log").read_text().splitlines():
        if not line.strip():
            continue
        match = LOG_LINE.match(line)
        if match is None:
            skipped += 1
            continue
        hits.append(match)
    errors = [m for m in hits if int(m["status"]) >= 400]
    hours = [int(m["hour"]) for m in hits]
    out = [
        f"Access report {hits[0]['day']}",
        f"Requests: {len(hits)}",
        f"Skipped lines: {skipped}",
        f"Unique clients: {len({m['ip'] for m in hits})}",
        f"Bytes sent: {sum(int(m['size']) for m in hits if m['size'] != '-')}",
        f"Error rate: {100 * len(errors) / len(hits):.1f}%",
        "Requests by hour:",
    ]
    for hour in range(min(hours), max(hours) + 1):
        requests = sum(h == hour for h in hours)
        failed = sum(int(m["hour"]) == hour for m in errors)
        out.append(f"  {hour:02d}:00 requests={requests} errors={failed}")
    out.append("Status codes:")
    for code, count in sorted(Counter(m["status"] for m in hits).items()):
        out.append(f"  {code} {count}")
    out.append("Top paths:")
    paths = Counter(m["target"].split("?", 1)[0] for m in hits)
    for path, count in sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:3]:
        out.append(f"  {path} {count}")
    (ws / "traffic_report.txt").write_text("\n".join(out) + "\n")


def purchases_csv(ws: Path) -> None:
    body = []
    for line in (ws / "events.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event["type"] != "purchase" or event.get("test") is True:
            continue
        when = dt.datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
        items = event["items"]
        body.append(
            [
                event["id"],
                when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                str(event["user"]["id"]),
                event["user"]["name"],
                ";".join(item["sku"] for item in items),
                str(sum(item["qty"] for item in items)),
                money(Decimal(str(event["amount"]))),
                event.get("coupon") or "",
            ]
        )
    body.sort(key=lambda row: (row[1], row[0]))
    header = ["event_id", "time_utc", "user_id", "user_name", "skus", "units", "amount", "coupon"]
    with (ws / "purchases.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *body])


def config_value(text: str) -> object:
    """A value of billing.conf as JSON: quoted string, bool, int, float, null, list or text."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [config_value(part) for part in inner.split(",")] if inner else []
    if text.lower() in ("true", "yes", "on"):
        return True
    if text.lower() in ("false", "no", "off"):
        return False
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text or None


def config_to_json(ws: Path) -> None:
    config: dict = {}
    section = config
    for line in (ws / "billing.conf").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = config
            for part in stripped[1:-1].strip().split("."):
                section = section.setdefault(part.strip(), {})
            continue
        key, value = stripped.split("=", 1)
        section[key.strip()] = config_value(value)
    (ws / "billing.json").write_text(json.dumps(config, indent=2) + "\n")


def timesheet_payroll(ws: Path) -> None:
    with (ws / "employees.csv").open(newline="") as f:
        staff = {r["employee_id"].strip().upper(): r for r in csv.DictReader(f)}
    lines = (ws / "timesheet.csv").read_text().splitlines()
    hours: dict[str, Decimal] = defaultdict(Decimal)
    seen, unmatched = set(), []
    for line in lines[1:]:
        if not line.strip():
            continue
        date, emp, project, spent = (cell.strip() for cell in next(csv.reader([line])))
        emp = emp.upper()
        key = (date, emp, project, Decimal(spent))
        if key in seen:
            continue
        seen.add(key)
        if emp not in staff:
            unmatched.append(line)
            continue
        hours[emp] += Decimal(spent)
    body, total_hours, total_pay = [], Decimal(0), Decimal(0)
    for emp, person in sorted(staff.items(), key=lambda kv: (kv[1]["department"], kv[1]["name"])):
        exact = hours[emp] * Decimal(person["hourly_rate"])
        assert (exact * 1000) % 10 != 5, "a pay ends in half a cent"
        pay = exact.quantize(CENT, rounding=ROUND_HALF_UP)
        total_hours, total_pay = total_hours + hours[emp], total_pay + pay
        body.append([person["department"], emp, person["name"], money(hours[emp]), money(pay)])
    body.append(["TOTAL", "", "", money(total_hours), money(total_pay)])
    with (ws / "payroll_november.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["department", "employee_id", "name", "hours", "pay"], *body])
    (ws / "unmatched.txt").write_text("".join(line + "\n" for line in unmatched))


def markdown_pricelist(ws: Path) -> None:
    with (ws / "products.csv").open(newline="") as f:
        products = [
            {k: v.strip() for k, v in r.items()}
            for r in csv.DictReader(f)
            if r["status"].strip().lower() == "active"
        ]
    products.sort(key=lambda p: (p["category"], p["name"]))
    header = ["SKU", "Name", "Category", "Price", "Stock"]
    right = [False, False, False, True, True]
    table = [
        [p["sku"], p["name"], p["category"], f"{Decimal(p['price']):.2f}", str(int(p["stock"]))]
        for p in products
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    dashes = ["-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right, strict=True)]
    rule = "|" + "|".join(dashes) + "|"
    out_of_stock = sum(row[4] == "0" for row in table)
    text = "\n".join(
        [
            "# Price list",
            "",
            line(header),
            rule,
            *(line(row) for row in table),
            "",
            f"{len(table)} products, {out_of_stock} out of stock",
        ]
    )
    (ws / "pricelist.md").write_text(text + "\n")


SCAN_DATE = re.compile(r"(?<!\d)(?:(\d{4})-(\d{2})-(\d{2})|(\d{4})(\d{2})(\d{2}))(?!\d)")


def scan_date(name: str) -> dt.date | None:
    """The first valid calendar date written YYYY-MM-DD or YYYYMMDD in a file name."""
    for match in SCAN_DATE.finditer(name):
        year, month, day = (int(g) for g in match.groups() if g is not None)
        try:
            return dt.date(year, month, day)
        except ValueError:
            continue
    return None


def organise_scans(ws: Path) -> None:
    manifest = []
    for path in sorted((ws / "scans").iterdir()):
        if not path.is_file():
            continue
        if path.name.startswith("~$") or path.name.lower().endswith(".tmp"):
            path.unlink()
            continue
        date = scan_date(path.name)
        if date is None:
            continue
        folder = ws / "archive" / str(date.year) / f"Q{(date.month - 1) // 3 + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        path.rename(folder / path.name)
        manifest.append([path.name, date.isoformat(), (folder / path.name).relative_to(ws)])
    manifest.sort(key=lambda row: (row[1], row[0]))
    with (ws / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "date", "moved_to"])
        writer.writerows([name, date, where.as_posix()] for name, date, where in manifest)


CATEGORISE = '''\
"""Sum this month's card and bank spending per budget category."""

import csv
from decimal import Decimal


def amount(text):
    return Decimal(text.strip().replace(".", "").replace(",", "."))


def main():
    with open("rules.csv", newline="", encoding="utf-8") as f:
        rules = [(r["keyword"].strip().lower(), r["category"].strip()) for r in csv.DictReader(f)]
    with open("budgets.csv", newline="", encoding="utf-8") as f:
        budgets = {r["category"].strip(): Decimal(r["budget"]) for r in csv.DictReader(f)}
    spent = {category: Decimal(0) for category in budgets}
    other = Decimal(0)
    unmatched = False
    with open("statement.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=";"):
            value = amount(row["Amount"])
            if value >= 0:
                continue
            payee = row["Payee"].lower()
            category = next((c for k, c in rules if k in payee), None)
            if category is None:
                other -= value
                unmatched = True
            else:
                spent[category] -= value
    over = []
    with open("spending.csv", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["category", "spent", "budget", "left"])
        for category in sorted(budgets):
            left = budgets[category] - spent[category]
            out.writerow([category, f"{spent[category]:.2f}", f"{budgets[category]:.2f}", f"{left:.2f}"])
            if left < 0:
                over.append(category)
        if unmatched:
            out.writerow(["other", f"{other:.2f}", "", ""])
    print("Over budget: " + (", ".join(over) if over else "none"))


if __name__ == "__main__":
    main()
'''


def bank_categorise(ws: Path) -> None:
    (ws / "categorise.py").write_text(CATEGORISE)
    subprocess.run([sys.executable, "categorise.py"], cwd=ws, check=True, capture_output=True)


SOLUTIONS_FILES2 = {
    "probe2-expense-summary": expense_summary,
    "probe2-access-report": access_report,
    "probe2-purchases-csv": purchases_csv,
    "probe2-config-to-json": config_to_json,
    "probe2-timesheet-payroll": timesheet_payroll,
    "probe2-markdown-pricelist": markdown_pricelist,
    "probe2-organise-scans": organise_scans,
    "probe2-bank-categorise": bank_categorise,
}
