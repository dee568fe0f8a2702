"""The README's rule table, generated from ``snakemake --list-rules`` (each rule's docstring).

Usage (from the repository folder)::

    python scripts/readme_rules.py           # rewrite the table in README.md
    python scripts/readme_rules.py --check   # exit 1 naming the difference when README.md is stale
    python scripts/readme_rules.py --check --ldct-root DIR   # config/ldct.yaml's patients from DIR instead

The rules do not depend on the data, but parsing the LDCT config lists its patient folders: without the
real data, ``--ldct-root`` names any folder with a patient folder in it (empty DICOM folders will do).

The rules are those of the default config (LUNA16 demo) and of ``config/ldct.yaml`` together
(``make_demo_luna16`` exists only with the demo); a rule each mode defines its own way
(``extract_patches``, ``verify_patches``, ``sanity_pictures``) has a row per mode.  The table sits between the markers
``<!-- rules:start -->`` and ``<!-- rules:end -->``; a rule's docstring is its row: what it does,
then after the last ``;`` what it writes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("config/config.yaml", "config/ldct.yaml")
START, END = "<!-- rules:start -->", "<!-- rules:end -->"


def list_rules(configfile: str, over: dict | None = None) -> dict[str, str]:
    """rule -> docstring, from ``snakemake --list-rules`` run in the repository with ``configfile`` (and the
    keys of ``over`` over it)."""
    import tempfile

    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        yaml.safe_dump(over or {}, extra)
        extra.flush()
        return _list_rules([configfile, extra.name] if over else [configfile])


def _list_rules(configfiles: list[str]) -> dict[str, str]:
    configfile = " ".join(configfiles)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules", "--configfile", *configfiles],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: snakemake --list-rules --configfile {configfile} failed:\n{proc.stderr[-2000:]}")
    rules = {}
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"(\w+)(?: \((.*)\))?", line.strip())
        if m:
            rules[m.group(1)] = m.group(2) or ""
    return rules


def table(rules: list[tuple[str, str]]) -> str:
    """The Markdown table of (rule, docstring): rule, what it does, what it writes (in the given order)."""
    lines = ["| rule | what it does | writes |", "|---|---|---|"]
    for name, doc in rules:
        if not doc:
            raise SystemExit(f"error: rule {name} has no docstring (workflow/rules/*.smk): the README row needs one")
        what, _, writes = doc.rstrip(".").rpartition("; ")
        if not what:
            what, writes = writes, ""
        writes = " ".join(f"`{w}`" for w in writes.split()) if writes.startswith("results/") else writes
        lines.append(f"| `{name}` | {what} | {writes} |")
    return "\n".join(lines)


ORDER = (
    "write_settings",
    "make_demo_luna16",
    "check_luna_inputs",
    "convert_mhd",
    "make_labels",
    "pair_slices",
    "extract_patches",
    "verify_patches",
    "sanity_pictures",
    "plan",
    "verification_table",
    "report_config",
    "nodule_accounting",
    "nodule_pictures",
    "all",
)


def current_table(ldct_root: str | None = None) -> str:
    """The rows in workflow order (``all`` last); a rule whose docstring differs between the configs
    (one definition per mode) gets a row per config, in the order of :data:`CONFIGS`."""
    found: dict[str, list[str]] = {}
    for configfile in CONFIGS:
        over = {"ldct": {"root": ldct_root}} if ldct_root and "ldct" in configfile else None
        for name, doc in list_rules(configfile, over).items():
            docs = found.setdefault(name, [])
            if doc not in docs:
                docs.append(doc)
    unknown = sorted(set(found) - set(ORDER))
    if unknown:
        raise SystemExit(f"error: rules {unknown} are not in scripts/readme_rules.py ORDER: add them where they run")
    return table([(name, doc) for name in ORDER for doc in found.get(name, [])])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md differs")
    ap.add_argument("--ldct-root", default=None, help="the LDCT patients' folder for config/ldct.yaml (any will do)")
    args = ap.parse_args(argv)
    readme = REPO / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        print(f"error: {readme}: markers {START} / {END} not found", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    old, tail = rest.split(END, 1)
    new = current_table(args.ldct_root)
    if args.check:
        if old.strip() != new.strip():
            print(
                f"error: {readme}: the rule table differs from snakemake --list-rules; run "
                f"python scripts/readme_rules.py\n--- README\n{old.strip()}\n--- expected\n{new}",
                file=sys.stderr,
            )
            return 1
        print("README rule table matches snakemake --list-rules")
        return 0
    readme.write_text(f"{head}{START}\n{new}\n{END}{tail}")
    print(f"wrote the rule table of {readme} ({new.count(chr(10)) - 1} rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
