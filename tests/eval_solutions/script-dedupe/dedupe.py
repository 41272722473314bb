"""Remove duplicate contacts: contacts.csv -> contacts_clean.csv (see the task)."""

import csv
import re

with open("contacts.csv", newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames
    rows = list(reader)
kept = {}
for row in rows:
    row = {k: (v or "").strip() for k, v in row.items()}
    row["name"] = " ".join(row["name"].split())
    row["email"] = row["email"].lower()
    digits = re.sub(r"\D", "", row["phone"])
    row["phone"] = ("+" + digits if row["phone"].startswith("+") else digits) if digits else ""
    first = kept.setdefault(row["email"], row)
    for key, value in row.items():
        if not first[key]:
            first[key] = value
with open("contacts_clean.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=header)
    writer.writeheader()
    writer.writerows(kept.values())
print(f"kept {len(kept)} of {len(rows)} contacts")
