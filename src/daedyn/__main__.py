"""Command line: ``python -m daedyn provenance FILE...`` prints where results came from."""

from __future__ import annotations

import argparse
import sys

from daedyn import provenance, store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daedyn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prov = sub.add_parser("provenance", help="print the provenance of result files")
    prov.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    status = 0
    for path in args.files:
        try:
            ds = store.open_dataset(path)
        except store.ResultFileError as err:
            print(f"{path}: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"== {path}")
        print(provenance.describe(ds.attrs))
    return status


if __name__ == "__main__":
    sys.exit(main())
