"""Split a CSV file into one file per value of a column: split_csv.py INPUT COLUMN OUTDIR."""

import argparse
import csv
import sys
from pathlib import Path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("column")
    parser.add_argument("outdir")
    args = parser.parse_args()
    with open(args.input, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if args.column not in header:
            print(f"split_csv: no column {args.column!r}", file=sys.stderr)
            return 2
        groups = {}
        for row in reader:
            key = "_".join(row[args.column].strip().lower().split()) or "unknown"
            groups.setdefault(key, []).append(row)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    for key, rows in groups.items():
        with open(out / f"{key}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
    print(f"wrote {len(groups)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
