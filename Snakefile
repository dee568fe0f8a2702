# ctpatch: CT scans -> traceable HDF5 training patches.
# Entry point: `snakemake --cores N` (local) or `snakemake --profile profiles/slurm` (cluster).
# The rules only wire files; the work is done by the ctpatch package (python -m ctpatch.<step>).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/luna16.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/merge.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
