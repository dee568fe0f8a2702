# ctpatch: CT scans -> traceable HDF5 training patches.
# Entry point: `snakemake --cores N` (local) or `snakemake --profile profiles/slurm` (cluster).
# The rules only wire files; the work is done by the ctpatch package (python -m ctpatch.<step>).

import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The rules call `python -m ctpatch.<step>`: make the package importable here and in every job,
# whether or not it was pip-installed (conda users get only the dependencies from envs/).
PACKAGE_DIR = os.path.join(workflow.basedir, "workflow")
sys.path.insert(0, PACKAGE_DIR)
PREFIX_PYTHONPATH = "export PYTHONPATH=%s${{PYTHONPATH:+:$PYTHONPATH}}; "
shell.prefix(PREFIX_PYTHONPATH % PACKAGE_DIR)


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/luna16.smk"
include: "workflow/rules/ldct.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/combine.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
