"""Command line: ``python -m daedyn provenance FILE...`` prints where results came from;
``python -m daedyn move-results [FOLDER]`` moves run files of the old layout into each experiment's tree;
``python -m daedyn findings`` writes the findings page, or README.md's findings block
(``--readme``), or refreshes the snapshot the README test compares with (``--refresh``)."""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from daedyn import findings, provenance, results, store


def findings_command(args) -> int:
    """``python -m daedyn findings``: the page, or the README block from the snapshot (``--refresh``: new snapshot)."""
    try:
        if args.refresh:
            copied = findings.refresh(args.root, args.snapshot, args.readme or "README.md")
            print(f"copied {len(copied)} tables into {args.snapshot}; rewrote {args.readme or 'README.md'}")
        elif args.readme:
            findings.rewrite_readme(args.readme, args.snapshot)
            print(f"rewrote the findings block of {args.readme} from {args.snapshot}")
        else:
            root = Path(args.root)
            rows = findings.write_page(findings.SUMMARY, str(root / "results/findings.md"),
                                       str(root / "results/findings.rst"), root=root)
            print(f"wrote {root / 'results/findings.md'}: {len(rows)} claims")
    except (OSError, ValueError) as err:
        print(f"daedyn findings: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daedyn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prov = sub.add_parser("provenance", help="print the provenance of result files")
    prov.add_argument("files", nargs="+")
    move = sub.add_parser("move-results", help="move run files of the layout before 0.2 (results/runs/<exp>, "
                          "results/{nonlinear,depth,masking}/<exp>) to results/<exp>/runs")
    move.add_argument("folder", nargs="?", default="results")
    move.add_argument("-n", "--dry-run", action="store_true", help="list the moves only")
    find = sub.add_parser("findings", help="write results/findings.md from results/claims/summary.csv; "
                          "--readme: rewrite README.md's findings block; --refresh: snapshot the tables first")
    find.add_argument("--root", default=".", help="the pipeline's working directory (default: .)")
    find.add_argument("--readme", nargs="?", const="README.md", help="rewrite this file's block between "
                      f"{findings.BEGIN} and {findings.END} (default README.md) from the snapshot")
    find.add_argument("--refresh", action="store_true", help="first copy the tables the findings read from "
                      "--root into the snapshot (after a default build), then rewrite README.md's block")
    find.add_argument("--snapshot", default=str(findings.SNAPSHOT), help="the snapshot folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "findings":
        return findings_command(args)
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
