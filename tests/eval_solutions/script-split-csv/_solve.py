"""Reference solution for script-split-csv: split_csv.py is laid over the workspace; run it."""

import subprocess
import sys

subprocess.run(
    [sys.executable, "split_csv.py", "staff.csv", "department", "by_department"], check=True
)
