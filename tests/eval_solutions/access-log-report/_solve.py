"""Reference solution for access-log-report: run in the task's workspace."""

import json
import re
from collections import Counter

LINE = re.compile(r'(\S+) \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)')
hits = [m for m in map(LINE.match, open("access.log").read().splitlines()) if m]
paths = Counter(m.group(3) for m in hits)
errors = sum(int(m.group(4)) >= 400 for m in hits)
summary = {
    "requests": len(hits),
    "unique_ips": len({m.group(1) for m in hits}),
    "bytes": sum(int(m.group(5)) for m in hits if m.group(5) != "-"),
    "status": {k: v for k, v in sorted(Counter(m.group(4) for m in hits).items())},
    "methods": dict(sorted(Counter(m.group(2) for m in hits).items())),
    "top_paths": [[p, n] for p, n in sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:3]],
    "error_rate": round(errors / len(hits), 3),
    "skipped_lines": sum(1 for line in open("access.log").read().splitlines() if line.strip())
    - len(hits),
}
with open("summary.json", "w") as f:
    json.dump(summary, f, indent=2)
