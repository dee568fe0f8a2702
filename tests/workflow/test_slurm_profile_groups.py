"""profiles/slurm in dry runs: at LUNA16 scale it submits tens of SLURM jobs, not ~950; the number
of nodes of an extraction (config extract.nodes) keeps the profile's launcher.

The 888 scans are header-only fakes (.mhd with an empty .raw beside it): a dry run reads the
folder listing and the tables only. No cluster is needed (nothing is submitted in a dry run).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import yaml
from paths import REPO
from snakerun import snakemake, write_config

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


PROFILE = REPO / "profiles" / "slurm"
LAUNCHER = yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"]["extract_patches"]["mpi"]


def _extract_resources(dry_run_output: str) -> dict[str, str]:
    """The resources of the first extract_patches job of a dry run (values as printed)."""
    block = dry_run_output.split("rule extract_patches:", 1)[1]
    line = re.search(r"^\s+resources: (.*)$", block, flags=re.M).group(1)
    return dict(item.split("=", 1) for item in line.split(", "))


def test_nodes_from_the_config_keep_the_profiles_launcher(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    write_config(tmp_path, config)
    nodes_file = tmp_path / "nodes.yaml"
    nodes_file.write_text("extract:\n  nodes: 2\n")
    profile = ("-n", "--profile", str(PROFILE))

    default = _extract_resources(snakemake(tmp_path, *profile).stdout)
    assert (default["nodes"], default["tasks"], default["cpus_per_task"]) == ("1", "2", "1"), default
    assert default["mpi"] == LAUNCHER, default

    # extract.nodes from a further config file: sbatch --nodes=2, launcher and cpus_per_task kept
    two = _extract_resources(snakemake(tmp_path, *profile, "--configfile", str(nodes_file)).stdout)
    assert two == {**default, "nodes": "2"}, (two, default)

    # what the key avoids: --set-resources replaces the profile's whole block for the rule
    cli = _extract_resources(snakemake(tmp_path, *profile, "--set-resources", "extract_patches:nodes=2").stdout)
    assert cli["nodes"] == "2" and cli["mpi"] == "mpiexec" and "cpus_per_task" not in cli, cli

    # a nested --config value arrives as a string, which the schema refuses (docs/slurm.md says: use a file)
    bad = snakemake(tmp_path, *profile, "--config", "extract={nodes: 2}", check=False)
    assert bad.returncode != 0 and "extract.nodes: '2' is not of type 'integer'" in bad.stdout + bad.stderr
