# ctpatch: CT scans -> traceable HDF5 training patches.
# Entry point: `snakemake --cores N` (local) or `snakemake --profile profiles/slurm` (cluster).
# The rules only wire files; the work is done by the ctpatch package (python -m ctpatch.<step>).

import os
import shlex
import sys

from snakemake.utils import min_version

min_version("9.0")

# The rules call `python -m ctpatch.<step>`: make the package importable here and in every job,
# whether or not it was pip-installed (conda users get only the dependencies from envs/).
PACKAGE_DIR = os.path.join(workflow.basedir, "workflow")
sys.path.insert(0, PACKAGE_DIR)

# The rules' interpreter (\"$CTPATCH_PYTHON\" -m ctpatch.<step>, set in the shell prefix): the one running
# Snakemake, so that a venv's `snakemake` run without activating the venv still finds h5py,
# hdf5plugin, ...; with conda deployment, the `python` of the rule's activated environment.
_DEPLOY = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", None) or ()
RULE_PYTHON = "python" if any("conda" in str(m).lower() for m in _DEPLOY) else sys.executable
# bash strict mode first (Snakemake's own default prefix, which a prefix of our own replaces): a failing
# command of a pipeline (the extraction teed into its log) fails the job
_PREFIX = f"set -euo pipefail; export PYTHONPATH={shlex.quote(PACKAGE_DIR)}${{PYTHONPATH:+:$PYTHONPATH}}; CTPATCH_PYTHON={shlex.quote(RULE_PYTHON)}; "
shell.prefix(_PREFIX.replace("{", "{{").replace("}", "}}"))


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# the first rule is the default target
rule all:
    """The default target: every group's patches, verification and sanity picture, and the report tables."""
    input:
        # a function: get_final_output comes from common.smk, included below
        lambda wildcards: get_final_output(),


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/luna16.smk"
include: "workflow/rules/ldct.smk"
include: "workflow/rules/report.smk"
