"""Reference solution for csv-to-json: run in the task's workspace."""

import csv
import json

with open("products.csv", newline="") as f:
    rows = list(csv.DictReader(f))
out = [
    {
        "sku": r["sku"],
        "name": r["name"],
        "price": float(r["price"]),
        "stock": int(r["stock"]),
        "active": r["active"].strip().lower() == "yes",
        "tags": [t.strip() for t in r["tags"].split(";") if t.strip()],
        "discontinued": r["discontinued"] or None,
    }
    for r in rows
]
with open("products.json", "w") as f:
    json.dump(out, f, indent=2)
