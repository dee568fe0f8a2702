"""What ``snakemake -n -p`` shows is what runs: every job's command names its files as plain paths.

No JSON object and no ``{group}`` placeholder on a command line (the settings files are the one
place settings travel; write_settings's command is the settings file's own text, printed into it);
the extraction names every input file it reads, its verification and pictures every patch file.
Dry runs only (LUNA16: the demo config; LDCT: patient folders without slices, which a dry run never
reads), and the lint of both modes.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest
from snakerun import SMALL_LUNA, snakemake, write_config

JOB = re.compile(r"^(?:local)?rule (\w+):\n(.*?)(?=^\[|\Z)", re.S | re.M)

LDCT_PATIENTS = ("L001", "L002", "L010")


def job_commands(stdout: str) -> list[tuple[str, str]]:
    """(rule, shell command) of every job of ``snakemake -n -p`` output (jobs without a command left out)."""
    out = []
    for rule, block in JOB.findall(stdout):
        _, found, command = block.partition("Shell command: ")
        command = command.strip()
        if found and command != "None":
            out.append((rule, command))
    return out


def words_of(command: str) -> list[str]:
    """The words of a command before its log redirection (``... > log 2>&1``; the extraction's output goes
    to its log and the terminal, ``... 2>&1 | tee log``)."""
    if " 2>&1 | tee " in command:
        return shlex.split(command.rpartition(" 2>&1 | tee ")[0])
    return shlex.split(command.rpartition(" > ")[0])


def option(words: list[str], name: str) -> list[str]:
    """The words after ``name`` up to the next option."""
    i = words.index(name) + 1
    j = next((k for k in range(i, len(words)) if words[k].startswith("--")), len(words))
    return words[i:j]


def assert_plain(commands: list[tuple[str, str]]) -> None:
    assert commands
    for rule, command in commands:
        assert "{group}" not in command, (rule, command)
        if rule != "write_settings":  # its command is the JSON text of the settings file it writes
            assert "{" not in command and "}" not in command, (rule, command)


@pytest.fixture
def luna(tmp_path):
    cfg = copy.deepcopy(SMALL_LUNA)
    cfg["luna16"]["negatives"] = {"strategy": "candidates"}
    write_config(tmp_path, cfg)
    return tmp_path


@pytest.fixture
def ldct(tmp_path):
    """Three patient folders with empty input and target folders; two patch files per patient."""
    root = tmp_path / "data"
    for p in LDCT_PATIENTS:
        for sub in ("quarter_3mm", "full_3mm"):
            (root / p / sub).mkdir(parents=True)
    cfg = {
        "mode": "ldct",
        "ldct": {"root": str(root), "input_dir": "quarter_3mm", "target_dir": "full_3mm", "output": {"nsplit": 2}},
    }
    work = tmp_path / "work"
    write_config(work, cfg)
    return work


def test_luna16_commands_name_their_files(luna):
    commands = job_commands(snakemake(luna, "-n", "-p").stdout)
    assert_plain(commands)
    res = "results/luna16"
    uids = {}  # subset -> the series uids its conversions write
    for rule, command in commands:
        if rule == "convert_mhd":
            npy = Path(option(words_of(command), "--npy-out")[0])
            uids.setdefault(npy.parent.name, []).append(npy.stem)
    assert sorted(uids) == ["subset0", "subset1"]
    extracts = [words_of(c) for r, c in commands if r == "extract_patches"]
    verifies = [words_of(c) for r, c in commands if r == "verify_patches"]
    assert len(extracts) == len(verifies) == 2
    for words in extracts + verifies:
        subset = Path(option(words, "--nodules")[0]).parent.name
        sidecars = [f"{res}/volumes/{subset}/{uid}.json" for uid in sorted(uids[subset])]
        assert sorted(option(words, "--sidecars")) == sidecars
        assert option(words, "--masks-dir") == [f"{res}/labels/{subset}/masks"]
        assert option(words, "--nodules") == [f"{res}/labels/{subset}/nodules.tsv"]
        assert option(words, "--candidates") == ["results/demo/luna16/CSVFILES/candidates.csv"]
        patches = option(words, "--out" if "ctpatch.luna16.extract" in words else "--patches")
        assert patches == [f"{res}/patches/{subset}.h5"]
    for words in extracts:
        assert "ctpatch.luna16.extract" in words
        assert option(words, "--group") == [Path(option(words, "--out")[0]).stem]


def test_ldct_commands_name_every_patients_files(ldct):
    commands = job_commands(snakemake(ldct, "-n", "-p").stdout)
    assert_plain(commands)
    by_rule = {rule: words_of(command) for rule, command in commands if rule != "write_settings"}
    res = "results/ldct"
    tables = [f"{res}/pairs/{p}.tsv" for p in LDCT_PATIENTS]
    parts = [f"{res}/patches/{p}.part{k}.h5" for p in LDCT_PATIENTS for k in (0, 1)]
    pairing = by_rule["pair_slices"]
    assert option(pairing, "--patient-dir") == [str(ldct.parent / "data" / p) for p in LDCT_PATIENTS]
    assert option(pairing, "--table-out") == tables
    assert option(pairing, "--report-out") == [f"{res}/pairs/{p}.json" for p in LDCT_PATIENTS]
    extract = by_rule["extract_patches"]
    assert "ctpatch.ldct.extract" in extract
    assert option(extract, "--pairs") == tables and option(extract, "--out") == parts
    verify = by_rule["verify_patches"]
    assert option(verify, "--pairs") == tables and option(verify, "--patches") == parts
    assert option(verify, "--report-out") == [f"{res}/report/{p}.verify.json" for p in LDCT_PATIENTS]
    sanity = by_rule["sanity_pictures"]
    assert option(sanity, "--patches") == parts
    assert option(sanity, "--out") == [f"{res}/sanity/{p}.png" for p in LDCT_PATIENTS]


def test_lint_is_clean_in_both_modes(luna, ldct):
    for work in (luna, ldct):
        proc = snakemake(work, "--lint", check=False)
        assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_parser_finds_each_job_and_its_command():
    out = (
        "[Mon Dec  7 21:35:54 2026]\nrule plan:\n    output: a\n    jobid: 1\nShell command: prog --out a\n\n"
        "[Mon Dec  7 21:35:54 2026]\nlocalrule w:\nShell command: (printf '%s\\n' '{\n \"x\": 1\n}' > b)\n\n"
        "[Mon Dec  7 21:35:54 2026]\nlocalrule all:\n    input: a\nShell command: None\n"
    )
    assert job_commands(out) == [("plan", "prog --out a"), ("w", "(printf '%s\\n' '{\n \"x\": 1\n}' > b)")]
