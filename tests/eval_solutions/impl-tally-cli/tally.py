"""tally: count the words in text files (see the task for the full usage)."""

import argparse
import json
import re
import sys
from collections import Counter


def main(argv=None):
    """Run the command with argv (default: sys.argv[1:]) and return the exit status."""
    parser = argparse.ArgumentParser(prog="tally", description="Count the words in text files.")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--ignore-case", action="store_true")
    parser.add_argument("--min-length", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    counts = Counter()
    for name in args.files:
        try:
            with open(name) as f:
                text = f.read()
        except OSError:
            print(f"tally: cannot read {name}", file=sys.stderr)
            return 2
        for word in re.findall(r"[A-Za-z]+", text):
            if len(word) >= args.min_length:
                counts[word.lower() if args.ignore_case else word] += 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: args.top]
    if args.json:
        print(json.dumps({"total": sum(counts.values()), "top": [list(kv) for kv in top]}))
    else:
        for word, count in top:
            print(f"{count} {word}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
