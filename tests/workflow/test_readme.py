"""README.md as a user reads it: every Python block runs as pasted after set-up command 1.

The blocks run, one fresh interpreter each, in the folder of a small demo run (the session
fixture ``small_luna_run``: the same files command 1 writes, ``results/luna16/patches/subset{0,1}.h5``,
from a smaller demo).
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from paths import REPO

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n\nz = 3\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n\nz = 3\n"]


README_BLOCKS = python_blocks((REPO / "README.md").read_text())


def test_the_readme_has_python_blocks():
    assert len(README_BLOCKS) >= 2


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("number", range(len(README_BLOCKS)))
def test_readme_python_block_runs_as_pasted(small_luna_run, number):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-"],
        input=README_BLOCKS[number],
        cwd=small_luna_run,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    block = README_BLOCKS[number]
    assert proc.returncode == 0, f"README Python block {number + 1} failed:\n{block}\n{proc.stderr[-3000:]}"


def patient_folders(tmp_path) -> Path:
    """An LDCT root with one patient of empty DICOM folders: enough to parse config/ldct.yaml and draw its rules
    (the rules do not depend on the data), so these tests need no real data (issue 22: they failed without
    ../shared)."""
    root = tmp_path / "ldct"
    for sub in ("quarter_3mm_sharp_sorted", "full_3mm_sharp_sorted"):
        (root / "L001" / sub).mkdir(parents=True)
    return root


def test_rule_table_matches_snakemake_list_rules(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "readme_rules.py"),
            "--check",
            "--ldct-root",
            str(patient_folders(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def dot_edges(dot: str) -> set[tuple[str, str]]:
    """(from rule, to rule) of ``snakemake --rulegraph`` output, plus (rule, rule) for every node."""
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, re.M))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}
    return edges | {(v, v) for v in labels.values()}


def svg_edges(svg: str) -> set[tuple[str, str]]:
    """The same from Graphviz's SVG of such a graph (node titles are the DOT ids, texts the labels)."""
    labels = dict(re.findall(r'class="node">\s*<title>(\d+)</title>.*?<text[^>]*>([^<]+)</text>', svg, re.S))
    titles = [html.unescape(t) for t in re.findall(r'class="edge">\s*<title>([^<]+)</title>', svg)]
    edges = {(labels[a], labels[b]) for a, b in (t.split("->") for t in titles)}
    return edges | {(v, v) for v in labels.values()}


def test_dot_and_svg_parsers_agree_on_a_small_graph():
    dot = 'digraph snakemake_dag {\n    0[label = "all", color = "0.1 0.6 0.85"];\n    1[label = "b"];\n    1 -> 0\n}'
    svg = (
        '<g id="node1" class="node">\n<title>0</title>\n<text x="1">all</text>\n</g>'
        '<g id="node2" class="node">\n<title>1</title>\n<text x="1">b</text>\n</g>'
        '<g id="edge1" class="edge">\n<title>1&#45;&gt;0</title>\n</g>'
    )
    assert dot_edges(dot) == svg_edges(svg) == {("b", "all"), ("all", "all"), ("b", "b")}


@pytest.mark.parametrize("mode, configfile", [("luna16", "config/config.yaml"), ("ldct", "config/ldct.yaml")])
def test_rule_graphs_hold_the_rules_and_edges_of_the_workflow(mode, configfile, tmp_path):
    # in the repository, as scripts/rulegraphs.sh runs it; LDCT with patient folders of its own (see above)
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"ldct": {"root": str(patient_folders(tmp_path))}} if mode == "ldct" else {}))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--rulegraph", "--configfile", configfile, str(over)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    svg = (REPO / "docs" / f"rulegraph-{mode}.svg").read_text()
    assert svg_edges(svg) == dot_edges(proc.stdout), "docs are stale: run scripts/rulegraphs.sh"


README = (REPO / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    """Set-up command 2 (install, format, lint of Python, Snakefile and workflow, tests) is what CI runs."""
    setup = README.split("## Set-up on a fresh machine", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in setup.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and "snakemake --lint &&" in commands[1], commands
    ci = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci == [commands[1]]
    # PyTorch's CPU build first (issue 22: the README asked for it without a command; PyPI's torch is CUDA's)
    first = commands[1].split(" && ")[0]
    assert re.fullmatch(
        r"python -m pip install torch==[\d.]+ --index-url https://download\.pytorch\.org/whl/cpu", first
    )
    assert commands[1].split(" && ")[1] == 'python -m pip install -e ".[test]"'


def test_readme_points_users_only_at_what_they_have():
    assert "SPEC.md" not in README and "../shared" not in README
    assert README.lower().index("graphviz") < README.index("| dot")  # said before the first command needing it
    assert "/reports/" not in README  # one report folder: results/<mode>/report/
    assert re.search(r"suite takes about \d+ minutes", README)


def readme_fields(table: str) -> set[str]:
    row = next(line for line in README.splitlines() if line.startswith(f"| `{table}` |"))
    return set(re.findall(r"`(\w+)`", row.split("|")[3]))


def test_readme_lists_every_provenance_field():
    from ctpatch.ldct.job import patch_dtype
    from ctpatch.luna16.job import PROV_NEGATIVE, PROV_NODULE

    assert readme_fields("provenance/nodule") == set(PROV_NODULE.names)
    assert readme_fields("provenance/non_nodule") == set(PROV_NEGATIVE.names)
    assert readme_fields("provenance/patch") == set(patch_dtype(4, 8).names)
    for explained in ("annotation_row", "scan_index", "patch_index", "pair_index"):
        assert f"- `{explained}`" in README or f"`{explained}` is" in README or f"`{explained}`:" in README, explained


def test_every_setting_value_the_readme_names_is_an_allowed_value():
    """Issue 22: the README said `negatives.strategy: candidate` (the value is `candidates`)."""
    from ctpatch.settings import choices

    checked = 0
    for key, value in re.findall(r"\b((?:luna16\.|ldct\.)?[a-z_]+(?:\.[a-z_0-9]+)+): ([A-Za-z0-9_.-]+)", README):
        for full in [key] if key.startswith(("luna16.", "ldct.")) else [f"luna16.{key}", f"ldct.{key}", key]:
            try:
                allowed = choices(full)  # keys with an enum; "luna16.root: demo" and the like have none
            except (KeyError, TypeError):
                continue
            assert value in allowed or value.rstrip(".") in allowed, f"README: {key}: {value} (allowed: {allowed})"
            checked += 1
            break
    assert checked >= 10, checked


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_github_anchor():
    assert github_anchor("Know your data: plan, report, checks") == "know-your-data-plan-report-checks"
    assert github_anchor("Set-up on a fresh machine") == "set-up-on-a-fresh-machine"


def sections() -> list[str]:
    return re.findall(r"^## (.+)$", README, re.M)


def test_contents_link_every_section_in_order():
    """Issue 22: a table of contents (the README is ~800 lines)."""
    contents = README[README.index("**Contents:**") : README.index("\n\n", README.index("**Contents:**"))]
    assert README.index("**Contents:**") < README.index("\n## ")  # before the first section
    links = re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", contents)
    assert [text for text, _ in links] == sections()
    assert all(anchor == github_anchor(text) for text, anchor in links), links


def test_a_new_user_reads_set_up_then_the_files_and_how_to_train():
    """Issue 22: what the files hold and how to train from them came after 108 lines of SLURM internals;
    the first screen takes a new user from clone to a training batch."""
    assert sections()[:2] == ["Set-up on a fresh machine", "What the files hold and how to train from them"]
    start = README.index("## What the files hold and how to train from them")
    section = README[start : README.index("\n## ", start)]
    for dataset in ("nodule", "label_nodule", "non_nodule", "label_non_nodule", "input", "target"):
        assert f"`{dataset}`" in section, dataset
    first_block = python_blocks(README)[0]
    assert first_block in section and "from ctpatch.readers import" in first_block
    # the batch within the first screenful: the first ~90 source lines (set-up commands, then the batch)
    assert README[: README.index(first_block) + len(first_block)].count("\n") <= 90
    assert "torch.utils.data.DataLoader" in section and "import h5py" in section  # PyTorch, and plain h5py
    later = {s: README.index(f"\n## {s}\n") for s in ("Running locally", "Running on SLURM", "Output files")}
    assert all(start < at for at in later.values()), later


def test_every_relative_link_of_the_docs_resolves():
    """README.md's and docs/*.md's links to files of the repository (and to their own headings) exist."""
    checked = 0
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text()
        anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            if path:
                assert (doc.parent / path).exists(), f"{doc.name}: {target}"
            else:
                assert anchor in anchors, f"{doc.name}: {target}"
            checked += 1
    assert checked >= 10, checked


def test_the_slurm_internals_are_in_their_own_document():
    """Issue 22: 164 README lines of SLURM internals; the README keeps how to run and what to set, docs/slurm.md
    the rest (the launcher, job groups, outages, the test clusters)."""
    start = README.index("## Running on SLURM\n")
    section = README[start : README.index("\n## ", start)]
    assert section.count("\n") < 40, section.count("\n")
    for needed in (
        'pip install -e ".[slurm]"',
        "scripts/slurm-status",
        "snakemake --profile profiles/slurm",
        "slurm_partition",
        "slurm_account",
        "`extract.nodes`",
        "group job",
        "](docs/slurm.md)",
        "](docs/slurm.md#when-the-controller-the-database-or-a-node-goes-away)",
    ):
        assert needed in section, needed
    doc = (REPO / "docs" / "slurm.md").read_text()
    headings = re.findall(r"^## (.+)$", doc, re.M)
    for heading in (
        "The launcher, and the failure it avoids",
        "Job groups (LUNA16 scale)",
        "When the controller, the database or a node goes away",
        "Test clusters",
    ):
        assert heading in headings, heading
    parts = {
        "launcher": (
            "mpi/pmi2: value not properly terminated",
            "MPIR_CVAR_CH4_NETMOD=ofi",
            "| launcher inside the job |",
        ),
        "job groups": ("10 `prep`, 10 extractions", "`cores: 8`", "PartitionConfig"),
        "outages": (
            "snakemake-executor-plugin-slurm/issues/207",
            "scripts/slurm-status/sacct",
            "NODE_FAIL",
            "DEADLINE",
        ),
        "test clusters": ("scripts/slurm-local.sh start", "scripts/slurm-twonode.sh start", "What the tests check"),
    }
    for part, phrases in parts.items():
        for phrase in phrases:
            assert phrase in doc, (part, phrase)
            assert phrase not in README, (part, phrase)  # moved, not copied
    # LDCT runs one extraction job for all patients (the README said "one SLURM job per subset or patient")
    for text in (section, doc):
        assert "one SLURM job per LUNA16 subset, one for all" in re.sub(r"\s+", " ", text)
