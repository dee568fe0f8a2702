"""profiles/slurm at LUNA16 scale: a dry run over 888 scans submits tens of SLURM jobs, not ~950.

The 888 scans are header-only fakes (.mhd with an empty .raw beside it): a dry run reads the
folder listing and the tables only. No cluster is needed (nothing is submitted in a dry run).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import yaml
from paths import REPO
from snakerun import snakemake

pytestmark = pytest.mark.slow

SUBSETS, SCANS = 10, 888
MHD = """\
ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 1 0 0 0 1 0 0 0 1
Offset = 0 0 0
ElementSpacing = 0.7 0.7 2.5
DimSize = 512 512 120
ElementType = MET_SHORT
ElementDataFile = {uid}.raw
"""


def _fake_luna16(root):
    uids = []
    for i in range(SCANS):
        uid = f"1.3.6.1.4.1.14519.5.2.1.6279.6001.{100000 + i}"
        folder = root / f"subset{i % SUBSETS}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{uid}.mhd").write_text(MHD.format(uid=uid))
        (folder / f"{uid}.raw").write_bytes(b"")
        uids.append(uid)
    (root / "CSVFILES").mkdir()
    (root / "CSVFILES" / "annotations.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm\n" + "".join(f"{u},1.0,2.0,3.0,6.0\n" for u in uids[::2])
    )
    (root / "CSVFILES" / "candidates.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,class\n" + "".join(f"{u},1.0,2.0,3.0,0\n" for u in uids)
    )


def _local_rules() -> set[str]:
    """Rules the workflow declares ``localrules`` (run by the submitting Snakemake, never sbatch'ed);
    a dry run prints them like any other job."""
    text = "\n".join(p.read_text() for p in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")])
    # "localrules: a, b" or one indented name per line
    blocks = re.findall(r"^localrules:([ \t]*\w[\w, \t]*\n|\n(?:[ \t]+\w+,?[ \t]*\n)+)", text, flags=re.M)
    return {name for block in blocks for name in re.findall(r"\w+", block)} | {"all"}


def _submissions(dry_run_output: str) -> tuple[Counter, Counter]:
    """(group jobs by group name, ungrouped jobs by rule) of a dry run's job listing."""
    groups = Counter(re.findall(r"^\[[^\]]+\] Group job (\S+) ", dry_run_output, flags=re.M))
    # ungrouped jobs start at column 0 (a group's members are indented)
    singles = Counter(re.findall(r"^rule (\w+):", dry_run_output, flags=re.M))
    for rule in _local_rules():
        singles.pop(rule, None)
    return groups, singles


def test_luna16_scale_dry_run_through_the_profile_submits_tens_of_jobs(tmp_path):
    _fake_luna16(tmp_path / "LUNA16")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["luna16"]["root"] = str(tmp_path / "LUNA16")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    out = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm")).stdout
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[-1], flags=re.M))
    local = _local_rules() | {"total"}
    assert stats["convert_mhd"] == str(SCANS), stats
    # without the groups it would be one SLURM job per rule and scan/subset (local rules aside)
    assert sum(int(n) for rule, n in stats.items() if rule not in local) == 943, (stats, local)

    groups, singles = _submissions(out)
    # one prep job per subset (its conversions + labels), one post job after the extractions
    assert groups == {"prep": SUBSETS, "post": 1}, groups
    assert singles == {"extract_patches": SUBSETS, "check_luna_inputs": 1, "plan": 1, "report_config": 1}, singles
    assert sum(groups.values()) + sum(singles.values()) == 24
    # every conversion is inside a group job
    assert len(re.findall(r"^    rule convert_mhd:", out, flags=re.M)) == SCANS
