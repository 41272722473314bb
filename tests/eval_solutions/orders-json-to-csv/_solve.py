"""Reference solution for orders-json-to-csv: run in the task's workspace."""

import csv
import json

data = json.load(open("orders.json", encoding="utf-8"))
rows = []
for order in data["orders"]:
    if order["status"] == "cancelled":
        continue
    for item in order["items"]:
        total = item["qty"] * item["price"] * (1 - item.get("discount", 0))
        rows.append(
            [
                order["id"],
                order["placed"][:10],
                order["customer"]["name"],
                order["customer"]["address"]["country"],
                item["sku"],
                item["qty"],
                f"{item['price']:.2f}",
                f"{total:.2f}",
            ]
        )
rows.sort(key=lambda r: (r[0], r[4]))
with open("order_lines.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(
        ["order_id", "date", "customer", "country", "sku", "qty", "unit_price", "line_total"]
    )
    w.writerows(rows)
