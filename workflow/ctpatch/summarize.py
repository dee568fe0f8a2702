"""Small tables for the Snakemake report: verification reports as one table, the config used.

Usage: ``python -m ctpatch.summarize verification --reports A.json B.json --out table.tsv``
and ``python -m ctpatch.summarize config --json '{...}' --out config.yaml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from ctpatch.store import atomic_path


def verification_table(reports) -> pd.DataFrame:
    """One row per verified group: ok, failures, and every number the reports give."""
    rows = []
    for path in reports:
        report = json.loads(Path(path).read_text())
        row = {"group": Path(path).name.split(".")[0], "ok": report["ok"], "failures": "; ".join(report["failures"])}
        row.update({k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if "reader" in report:  # what a reader outside ctpatch needs (ctpatch.reading)
            row["reader"] = report["reader"]
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ctpatch.summarize", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("verification")
    v.add_argument("--reports", nargs="+", required=True)
    v.add_argument("--out", required=True)
    c = sub.add_parser("config")
    c.add_argument("--json", required=True, help="the validated config as JSON")
    c.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with atomic_path(args.out) as tmp:
        if args.what == "verification":
            verification_table(args.reports).to_csv(tmp, sep="\t", index=False)
        else:
            tmp.write_text(yaml.safe_dump(json.loads(args.json), sort_keys=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
