"""Shell quoting as a class, checked statically: every field of every rule's shell command is quoted
with ``:q``, except the launcher, which is shell text by design (several words)."""

from __future__ import annotations

import re

from paths import REPO

#: the one field that is not one word: the launcher ("srun --mpi=pmi2"), a command with its own words
SHELL_TEXT = {"resources.mpi"}


def shell_fields():
    """(file, line number, field) of every {field} in the rules' shell: blocks."""
    out = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        in_shell, indent = False, 0
        for n, line in enumerate(smk.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped == "shell:":
                in_shell, indent = True, len(line) - len(line.lstrip())
                continue
            if in_shell and stripped and len(line) - len(line.lstrip()) <= indent:
                in_shell = False
            if in_shell:
                text = re.sub(r"\{\{|\}\}", "", line.split("#")[0] if line.lstrip().startswith("#") else line)
                out += [(smk.name, n, f) for f in re.findall(r"\{([^{}]+)\}", text)]
    return out


def test_every_shell_field_is_quoted():
    fields = shell_fields()
    assert len(fields) > 60  # the scan found the rules' commands
    bad = [
        f"{name}:{n}: {{{field}}}" for name, n, field in fields if not field.endswith(":q") and field not in SHELL_TEXT
    ]
    assert not bad, "unquoted shell fields:\n" + "\n".join(bad)


def test_no_rule_calls_a_bare_python():
    """The rules call the interpreter running Snakemake ("$CTPATCH_PYTHON", set in the Snakefile's shell
    prefix), never whatever `python` PATH finds."""
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        assert not re.search(r'"\s*\(?python -m', smk.read_text()) and " python -m ctpatch" not in smk.read_text(), smk
