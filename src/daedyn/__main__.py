"""Command line: ``python -m daedyn provenance FILE...`` prints where results came from;
``python -m daedyn move-results [FOLDER]`` moves run files of the old layout into each experiment's tree."""

from __future__ import annotations

import argparse
import sys

from daedyn import provenance, results, store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daedyn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prov = sub.add_parser("provenance", help="print the provenance of result files")
    prov.add_argument("files", nargs="+")
    move = sub.add_parser("move-results", help="move run files of the layout before 0.2 (results/runs/<exp>, "
                          "results/{nonlinear,depth,masking}/<exp>) to results/<exp>/runs")
    move.add_argument("folder", nargs="?", default="results")
    move.add_argument("-n", "--dry-run", action="store_true", help="list the moves only")
    args = parser.parse_args(argv)
    if args.command == "move-results":
        try:
            moves = results.move_old_layout(args.folder, dry_run=args.dry_run)
        except FileExistsError as err:
            print(f"daedyn move-results: {err}", file=sys.stderr)
            return 1
        for old, new in moves:
            print(f"{old} -> {new}")
        print(f"{'would move' if args.dry_run else 'moved'} {len(moves)} files", file=sys.stderr)
        return 0

    status = 0
    for path in args.files:
        try:
            attrs = store.read_attrs(path)  # the attributes only: a damaged data chunk does not hide them
        except store.ResultFileError as err:
            print(f"{path}: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"== {path}")
        print(provenance.describe(attrs))
    return status


if __name__ == "__main__":
    sys.exit(main())
