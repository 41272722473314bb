"""Reference solution for extract-invoices: run in the task's workspace."""

import csv
import re
from pathlib import Path

rows = []
for path in Path("invoices").glob("inv-*.txt"):
    text = path.read_text(encoding="utf-8")

    def field(label, text=text):
        return re.search(rf"^{label}:\s*(.+?)\s*$", text, re.MULTILINE).group(1)

    day, month, year = field("Date").split(".")
    quantities = [int(q) for q in re.findall(r"^\s+(\d+) x ", text, re.MULTILINE)]
    rows.append(
        [
            field("Invoice number"),
            f"{year}-{month}-{day}",
            field("Customer"),
            field("Customer number"),
            str(len(quantities)),
            str(sum(quantities)),
            field("Total").split()[0],
            field("Paid"),
        ]
    )
with open("invoices.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(
        ["number", "date", "customer", "customer_number", "items", "units", "total", "paid"]
    )
    writer.writerows(sorted(rows))
