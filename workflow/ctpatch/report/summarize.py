"""Small tables for the Snakemake report: verification reports as one table, the config used.

Usage: ``python -m ctpatch.report.summarize verification --reports A.json B.json --out table.tsv``
and ``python -m ctpatch.report.summarize config --settings-file plan.json --out config.yaml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from ctpatch.settings import read_settings
from ctpatch.store.atomic import atomic_path
from ctpatch.store.reading import reader_brief


def verification_table(reports) -> pd.DataFrame:
    """One row per verified group: ok, failures, every number the reports give, and ``reader`` in brief (the
    reports hold the whole sentence)."""
    rows = []
    for path in reports:
        report = json.loads(Path(path).read_text())
        row = {"group": Path(path).name.split(".")[0], "ok": report["ok"], "failures": "; ".join(report["failures"])}
        row.update({k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if "reader" in report:  # what a reader outside ctpatch needs (ctpatch.store.reading), in brief: a
            # table cell of the whole sentence made every row of the report's table ~250 px tall
            row["reader"] = reader_brief(report["codecs"]) if "codecs" in report else report["reader"].split(":")[0]
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    """``python -m ctpatch.report.summarize`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.report.summarize", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("verification")
    v.add_argument("--reports", nargs="+", required=True)
    v.add_argument("--out", required=True)
    c = sub.add_parser("config")
    c.add_argument("--settings-file", required=True, help="settings of scope 'plan' (the validated config)")
    c.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with atomic_path(args.out) as tmp:
        if args.what == "verification":
            verification_table(args.reports).to_csv(tmp, sep="\t", index=False)
        else:
            config = read_settings(args.settings_file, scope="plan").to_dict()
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
