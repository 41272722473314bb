"""Reference solution for organise-photos: run in the task's workspace."""

import csv
import re
from pathlib import Path

PATTERN = re.compile(r"(IMG|VID)_(\d{4})(\d{2})(\d{2})_(\d{6})\.(jpg|jpeg|mp4)", re.IGNORECASE)
moves = []
for path in sorted(Path("inbox").iterdir()):
    m = PATTERN.fullmatch(path.name)
    if not m:
        continue
    kind, year, month, day, time, ext = m.groups()
    video = kind.upper() == "VID"
    if video != (ext.lower() == "mp4"):
        continue
    folder = Path("videos" if video else "photos", year, month)
    folder.mkdir(parents=True, exist_ok=True)
    new = folder / f"{year}-{month}-{day}_{time}.{'mp4' if video else 'jpg'}"
    path.rename(new)
    moves.append([path.as_posix(), new.as_posix()])
with open("moves.csv", "w", newline="") as f:
    csv.writer(f).writerows([["old", "new"], *sorted(moves)])
