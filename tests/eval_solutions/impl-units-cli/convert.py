"""convert: a unit converter for the command line (see the task for the usage)."""

import argparse
import sys

FACTORS = {
    "length": {
        "mm": 0.001,
        "cm": 0.01,
        "m": 1,
        "km": 1000,
        "in": 0.0254,
        "ft": 0.3048,
        "mi": 1609.344,
    },
    "mass": {"g": 0.001, "kg": 1, "lb": 0.45359237, "oz": 0.028349523125},
    "temperature": {"C": None, "F": None, "K": None},
}
TO_C = {"C": lambda v: v, "F": lambda v: (v - 32) * 5 / 9, "K": lambda v: v - 273.15}
FROM_C = {"C": lambda c: c, "F": lambda c: c * 9 / 5 + 32, "K": lambda c: c + 273.15}


def kind_of(unit):
    for kind, units in FACTORS.items():
        if unit in units:
            return kind
    return None


def main(argv=None):
    """Run the command with argv (default: sys.argv[1:]) and return the exit status."""
    parser = argparse.ArgumentParser(prog="convert")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--precision", type=int, default=2)
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args(argv)
    if ns.list:
        for kind, units in FACTORS.items():
            print(f"{kind}: {' '.join(units)}")
        return 0
    if len(ns.args) != 3:
        parser.error("give VALUE FROM TO")
    if ns.precision < 0:
        parser.error("precision must be 0 or more")
    raw, src, dst = ns.args
    try:
        value = float(raw)
    except ValueError:
        parser.error(f"not a number: {raw}")
    for unit in (src, dst):
        if kind_of(unit) is None:
            print(f"convert: unknown unit {unit!r}", file=sys.stderr)
            return 2
    if kind_of(src) != kind_of(dst):
        print(f"convert: cannot convert {src} to {dst}", file=sys.stderr)
        return 2
    if kind_of(src) == "temperature":
        result = FROM_C[dst](TO_C[src](value))
    else:
        result = value * FACTORS[kind_of(src)][src] / FACTORS[kind_of(dst)][dst]
    print(f"{raw} {src} = {result:.{ns.precision}f} {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
