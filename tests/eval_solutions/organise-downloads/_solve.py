"""Reference solution for organise-downloads: run in the task's workspace."""

import json
from pathlib import Path

KINDS = {
    "documents": {"pdf", "doc", "docx", "odt", "xlsx", "csv", "md", "txt"},
    "images": {"jpg", "jpeg", "png", "gif"},
    "archives": {"zip", "gz", "tar", "7z"},
}
d = Path("downloads")
index = {k: [] for k in [*KINDS, "unsorted"]}
for path in sorted(p for p in d.iterdir() if p.is_file()):
    ext = path.suffix.lower().lstrip(".")
    kind = next((k for k, exts in KINDS.items() if ext in exts), None)
    if kind is None:
        index["unsorted"].append(path.name)
        continue
    new = path.name.lower().replace(" ", "-")
    (d / kind).mkdir(exist_ok=True)
    path.rename(d / kind / new)
    index[kind].append(new)
(d / "index.json").write_text(json.dumps({k: sorted(v) for k, v in index.items()}, indent=2))
