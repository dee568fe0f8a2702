"""``python -m ctpatch.report.plan``: print (and write) the plan of a config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctpatch.report.plan import make_plan
from ctpatch.report.plan.inputs import PlanError
from ctpatch.report.plan.measure import MIN_SAMPLE
from ctpatch.report.plan.text import _jsonable, format_plan
from ctpatch.settings import load_config, read_settings


def main(argv=None) -> int:
    """Print the plan of a config (``--configfile``) or of a workflow run (``--settings-file``); 0 or 1."""
    import ctpatch.report.plan

    ap = argparse.ArgumentParser(
        prog="python -m ctpatch.report.plan", description=ctpatch.report.plan.__doc__.split("\n\n")[0]
    )
    ap.add_argument("--configfile", nargs="+", default=[], help="config YAML file(s), merged in order")
    ap.add_argument(
        "--settings-file", help="settings of scope 'plan' (the workflow's validated config), instead of --configfile"
    )
    ap.add_argument("--json", help="also write the plan as JSON to this file")
    ap.add_argument("--text", help="also write the printed table to this file")
    ap.add_argument("--workdir", default=".", help="folder the workflow runs in (relative paths start there)")
    ap.add_argument("--cores", type=int, help="cores of the run, for the wall-time estimate (default: this machine's)")
    ap.add_argument("--sample", type=int, default=24, help="LUNA16 patches to measure (default 24; LDCT: 2 pairs)")
    ap.add_argument("--no-sample", action="store_true", help="counts and raw sizes only (no scan is read)")
    args = ap.parse_args(argv)
    if bool(args.configfile) == bool(args.settings_file):
        ap.error("expected either --configfile or --settings-file")
    if args.sample < MIN_SAMPLE:
        ap.error(f"--sample: expected at least {MIN_SAMPLE} patches, got {args.sample}")
    try:
        if args.settings_file:
            config = read_settings(args.settings_file, scope="plan").to_dict()
        else:
            config = load_config(*args.configfile)
        plan = make_plan(config, args.workdir, 0 if args.no_sample else args.sample, args.cores)
    except (PlanError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from ctpatch.store.atomic import atomic_path, write_json

    text = format_plan(plan)
    print(text)
    if args.json:
        write_json(args.json, _jsonable(plan))
    if args.text:
        with atomic_path(args.text) as tmp:
            Path(tmp).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
