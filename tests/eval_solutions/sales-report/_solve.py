"""Reference solution for sales-report: run in the task's workspace."""

import csv
from collections import defaultdict

with open("sales.csv", newline="") as f:
    rows = list(csv.DictReader(f))
region, product, month = defaultdict(float), defaultdict(float), defaultdict(float)
units = 0
for r in rows:
    amount = int(r["units"]) * float(r["unit_price"])
    units += int(r["units"])
    region[r["region"]] += amount
    product[r["product"]] += amount
    month[r["date"][:7]] += amount
revenue = sum(region.values())


def best(d):
    return sorted(d.items(), key=lambda kv: (-round(kv[1], 2), kv[0]))


lines = [
    "Sales report Q1 2024",
    f"Orders: {len(rows)}",
    f"Units: {units}",
    f"Revenue: {revenue:.2f}",
    f"Average order: {revenue / len(rows):.2f}",
    "Revenue by region:",
    *(f"  {name}: {value:.2f}" for name, value in best(region)),
    "Revenue by month:",
    *(f"  {name}: {value:.2f}" for name, value in sorted(month.items())),
    f"Best product: {best(product)[0][0]} ({best(product)[0][1]:.2f})",
]
with open("report.txt", "w") as f:
    f.write("\n".join(lines) + "\n")
