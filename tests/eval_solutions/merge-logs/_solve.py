"""Reference solution for merge-logs: run in the task's workspace."""

import json
from collections import Counter
from pathlib import Path

entries = []  # (timestamp, file order, line order, lines)
for order, path in enumerate(sorted(Path("logs").glob("*.log"))):
    source = path.stem
    for number, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        if line[0].isspace():
            entries[-1][3].append(line)
            continue
        stamp, rest = line.split(" ", 1)
        entries.append((stamp, order, number, [f"{stamp} {source} {rest}"]))
entries.sort(key=lambda e: e[:3])
Path("merged.log").write_text("".join(line + "\n" for e in entries for line in e[3]))
levels = Counter(e[3][0].split(" ")[2] for e in entries)
Path("levels.json").write_text(json.dumps(dict(sorted(levels.items())), indent=2))
