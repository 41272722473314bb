"""Reference solution for script-dedupe: dedupe.py is laid over the workspace; run it."""

import subprocess
import sys

subprocess.run([sys.executable, "dedupe.py"], check=True)
